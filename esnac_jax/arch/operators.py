"""Compression operators on `Arch`: remove layers, shrink widths, add skips.

All operators take the teacher, so every child keeps the teacher's layer
count (a removed layer stays as an `identity` row) and its edges; a child
only ever gains edges (skip connections). Randomness comes from an explicit
`numpy.random.Generator`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, Sequence

import numpy as np

from esnac_jax.arch.core import Arch, Layer, build_arch
from esnac_jax.arch.widths import MODES, WidthGroup, analyse, set_widths, width_groups

REMOVABLE_KINDS = ('conv', 'bn', 'relu', 'shuffle')


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """The original's sampling distributions (options.py ar_p1/ar_p2/ar_p3).

  remove_probs: p1 drawn once per sample; each removable layer goes with p1.
  shrink_range: each width group draws r ~ U[lo, hi]; new width (1 - r) * F.
  skip_probs: p3 drawn once per sample; each eligible pair is added with p3.
  group_mode: 'by_width' (original: one knob per teacher width) or 'fine'.
  """
  remove_probs: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
  shrink_range: tuple[float, float] = (0.0, 1.0)
  skip_probs: tuple[float, ...] = (0.003, 0.005, 0.01, 0.03, 0.05)
  group_mode: str = 'by_width'

  def __post_init__(self):
    for p in self.remove_probs + self.skip_probs:
      if not 0.0 <= p <= 1.0:
        raise ValueError(f'probabilities must lie in [0, 1], got {p}')
    lo, hi = self.shrink_range
    if not 0.0 <= lo <= hi <= 1.0:
      raise ValueError(f'shrink_range must satisfy 0 <= lo <= hi <= 1, got '
                       f'{self.shrink_range}')
    if self.group_mode not in MODES:
      raise ValueError(f'unknown group_mode {self.group_mode!r}; use one of '
                       f'{MODES}')
    if not self.remove_probs or not self.skip_probs:
      raise ValueError('remove_probs and skip_probs need at least one value')


# ---- the child relation ---------------------------------------------------


def check_child(arch: Arch, teacher: Arch) -> None:
  """Raises ValueError unless `arch` is a compressed child of `teacher`."""
  if arch.num_layers != teacher.num_layers:
    raise ValueError(f'the arch has {arch.num_layers} layers, its teacher '
                     f'{teacher.num_layers}: children keep every layer')
  if arch.input_shape != teacher.input_shape:
    raise ValueError(f'input shape {arch.input_shape} differs from the '
                     f"teacher's {teacher.input_shape}")
  missing = set(teacher.edges) - set(arch.edges)
  if missing:
    raise ValueError(f'the arch lacks teacher edges {sorted(missing)[:5]}')
  for i, (a, t) in enumerate(zip(arch.layers, teacher.layers)):
    where = f"layer {i} ('{t.name}', {t.kind})"
    if a.kind not in (t.kind, 'identity'):
      raise ValueError(f'{where}: kind {a.kind!r} is neither the teacher\'s '
                       'nor identity')
    if a.kind == 'identity' and t.kind != 'identity' and not is_removable(
        teacher, i):
      raise ValueError(f'{where}: this layer cannot be removed (it changes '
                       'the shape)')
    if a.out_shape[-1] > t.out_shape[-1]:
      raise ValueError(f'{where}: {a.out_shape[-1]} channels, more than the '
                       f"teacher's {t.out_shape[-1]}")


def is_removable(teacher: Arch, i: int) -> bool:
  layer = teacher.layers[i]
  return (layer.kind in REMOVABLE_KINDS and i > 0 and
          layer.in_shape == layer.out_shape)


@functools.lru_cache(maxsize=64)
def removable_layers(teacher: Arch) -> tuple[int, ...]:
  """Layers whose teacher input and output shapes agree (original rule)."""
  return tuple(i for i in range(teacher.num_layers) if is_removable(teacher, i))


@functools.lru_cache(maxsize=64)
def skip_pairs(teacher: Arch) -> tuple[tuple[int, int], ...]:
  """All i < j with teacher out_shape(i) == in_shape(j), j a plain layer.

  As the original's any-distance list, less the targets where a summed input
  means nothing (layer 0, concat, the teacher's own identity rows).
  """
  pairs = []
  for j, lj in enumerate(teacher.layers):
    if j == 0 or lj.kind in ('concat', 'identity'):
      continue
    for i in range(j):
      if teacher.layers[i].out_shape == lj.in_shape:
        pairs.append((i, j))
  return tuple(pairs)


# ---- the three operators ---------------------------------------------------


def removable_now(arch: Arch, teacher: Arch) -> tuple[int, ...]:
  """Removable layers of `arch` that are still present and may go now.

  A conv may go only when its current input and output widths agree (always
  true in 'by_width' mode; in 'fine' mode widths may have been shrunk apart).
  """
  out = []
  for i in removable_layers(teacher):
    layer = arch.layers[i]
    if layer.kind == 'identity':
      continue
    if layer.in_shape != layer.out_shape:
      continue
    out.append(i)
  return tuple(out)


def remove_layers(arch: Arch, teacher: Arch, idx: Iterable[int]) -> Arch:
  """`arch` with the given layers replaced by identity rows.

  Skip edges added earlier that end at a removed layer are dropped (as in the
  original, a removed layer is never a skip target).
  """
  idx = set(int(i) for i in idx)
  allowed = set(removable_now(arch, teacher))
  bad = sorted(idx - allowed)
  if bad:
    i = bad[0]
    raise ValueError(f"layer {i} ('{teacher.layers[i].name}', "
                     f'{arch.layers[i].kind}) cannot be removed: only present '
                     'shape-preserving conv/bn/relu/shuffle layers can')
  layers = list(arch.layers)
  for i in idx:
    l = layers[i]
    layers[i] = Layer('identity', l.in_shape, l.out_shape, name=l.name)
  teacher_edges = set(teacher.edges)
  edges = [e for e in arch.edges if e in teacher_edges or e[1] not in idx]
  return build_arch(arch.input_shape, layers, edges, arch.name)


def restore_layer(arch: Arch, teacher: Arch, i: int) -> Arch:
  """Undo a removal: the teacher's layer i, at the current width."""
  t, a = teacher.layers[i], arch.layers[i]
  if a.kind != 'identity' or t.kind == 'identity':
    raise ValueError(f"layer {i} ('{t.name}') is not a removed layer")
  c = a.in_shape[-1]
  layer = t.replace(in_shape=a.in_shape, out_shape=a.out_shape)
  if t.kind == 'conv':
    groups = c if t.groups == t.in_channels else t.groups
    if c % groups:
      raise ValueError(f"layer {i} ('{t.name}'): width {c} is not divisible "
                       f'by its {groups} groups')
    layer = layer.replace(in_channels=c, out_channels=c, groups=groups)
  layers = list(arch.layers)
  layers[i] = layer
  return build_arch(arch.input_shape, layers, arch.edges, arch.name)


def shrunk_width(group: WidthGroup, ratio: float) -> int:
  """The original's max(1, int((1 - r) F)), rounded up to the divisor."""
  w = max(1, int((1.0 - ratio) * group.teacher_width))
  d = group.divisor
  w = -(-w // d) * d
  return min(max(w, d), group.teacher_width)


def shrink(
    arch: Arch, teacher: Arch,
    widths: dict[WidthGroup, int] | Sequence[tuple[WidthGroup, int]]) -> Arch:
  """`arch` with each given width group set to its new width."""
  items = widths.items() if isinstance(widths, dict) else widths
  new: dict[int, int] = {}
  for g, w in items:
    if w > g.teacher_width:
      raise ValueError(f'width {w} exceeds the teacher width '
                       f'{g.teacher_width} of atoms {g.atoms}')
    for a in g.atoms:
      new[a] = int(w)
  return set_widths(arch, teacher, new)


def skips_now(arch: Arch, teacher: Arch) -> tuple[tuple[int, int], ...]:
  """Skip pairs that can be added to `arch` now (new, shapes agree now)."""
  have = set(arch.edges)
  out = []
  for i, j in skip_pairs(teacher):
    if (i, j) in have or arch.layers[j].kind == 'identity':
      continue
    if arch.layers[i].out_shape == arch.layers[j].in_shape:
      out.append((i, j))
  return tuple(out)


def add_skips(arch: Arch, teacher: Arch, pairs: Iterable[tuple[int,
                                                               int]]) -> Arch:
  """`arch` with extra summed inputs (i -> j)."""
  pairs = [tuple(map(int, p)) for p in pairs]
  ok = set(skips_now(arch, teacher)) | set(arch.edges)
  for p in pairs:
    if p not in ok:
      raise ValueError(f'skip {p} cannot be added: the shapes of layer {p[0]} '
                       f'output and layer {p[1]} input differ, or the target '
                       'is removed or a concat')
  return build_arch(arch.input_shape, arch.layers,
                    tuple(arch.edges) + tuple(pairs), arch.name)


# ---- sampling and mutation -------------------------------------------------


def sample(
    teacher: Arch,
    rng: np.random.Generator,
    cfg: SamplerConfig = SamplerConfig()) -> Arch:
  """One random child with the original's distributions.

  Order: removal on the teacher, then one ratio per width group of the
  result, then skips between pairs whose shapes agree.
  """
  p1 = float(rng.choice(cfg.remove_probs))
  cand = removable_layers(teacher)
  removed = [i for i, u in zip(cand, rng.random(len(cand))) if u < p1]
  arch = remove_layers(teacher, teacher, removed)
  groups = width_groups(arch, teacher, cfg.group_mode)
  ratios = rng.uniform(*cfg.shrink_range, size=len(groups))
  arch = shrink(arch, teacher,
                [(g, shrunk_width(g, r)) for g, r in zip(groups, ratios)])
  p3 = float(rng.choice(cfg.skip_probs))
  pairs = skips_now(arch, teacher)
  chosen = [p for p, u in zip(pairs, rng.random(len(pairs))) if u < p3]
  return add_skips(arch, teacher, chosen)


MUTATIONS = ('remove', 'restore', 'resize', 'add_skip', 'drop_skip')


def mutate(arch: Arch,
           teacher: Arch,
           rng: np.random.Generator,
           cfg: SamplerConfig = SamplerConfig(),
           max_tries: int = 32) -> Arch:
  """One small change to `arch`: remove or restore one layer, resize one
  width group, or add or drop one skip. The result differs from `arch`.

  Resizing multiplies a group's width by a factor in [0.5, 1.5] (clipped to
  [divisor, teacher width]) or, one time in four, redraws it from the prior.
  """
  teacher_edges = set(teacher.edges)
  for _ in range(max_tries):
    op = MUTATIONS[rng.integers(len(MUTATIONS))]
    if op == 'remove':
      options = removable_now(arch, teacher)
      if options:
        return remove_layers(arch, teacher, [rng.choice(options)])
    elif op == 'restore':
      options = [
          i for i, (a, t) in enumerate(zip(arch.layers, teacher.layers))
          if a.kind == 'identity' and t.kind != 'identity'
      ]
      if options:
        try:
          return restore_layer(arch, teacher, int(rng.choice(options)))
        except ValueError:
          continue
    elif op == 'resize':
      groups = width_groups(arch, teacher, cfg.group_mode)
      if groups:
        g = groups[rng.integers(len(groups))]
        if rng.random() < 0.25:
          w = shrunk_width(g, rng.uniform(*cfg.shrink_range))
        else:
          w = int(round(g.width * rng.uniform(0.5, 1.5)))
          w = min(max(-(-w // g.divisor) * g.divisor, g.divisor),
                  g.teacher_width)
        if w != g.width:
          return shrink(arch, teacher, [(g, w)])
    elif op == 'add_skip':
      options = skips_now(arch, teacher)
      if options:
        return add_skips(arch, teacher, [options[rng.integers(len(options))]])
    else:
      extra = [e for e in arch.edges if e not in teacher_edges]
      if extra:
        drop = extra[rng.integers(len(extra))]
        return build_arch(arch.input_shape, arch.layers,
                          [e for e in arch.edges if e != drop], arch.name)
  raise ValueError(f'no mutation applies to this arch after {max_tries} tries')


def compression_ratio(arch: Arch, teacher: Arch) -> float:
  """c = 1 - params(arch) / params(teacher)."""
  return 1.0 - arch.num_params / teacher.num_params


__all__ = [
    'SamplerConfig',
    'check_child',
    'removable_layers',
    'removable_now',
    'remove_layers',
    'restore_layer',
    'shrink',
    'shrunk_width',
    'skip_pairs',
    'skips_now',
    'add_skips',
    'sample',
    'mutate',
    'compression_ratio',
    'analyse',
    'width_groups',
]
