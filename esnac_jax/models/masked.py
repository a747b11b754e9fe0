"""The masked path: K candidates as masks over the teacher's network.

A child of a teacher differs from it only by removed layers (identity
rows), fewer channels and extra summed skip edges. So every child can run
as the teacher's network with the teacher's parameter shapes plus masks:

  keep [L]  1 where the layer is computed, 0 where the child has identity
  edge [P]  1 where the child has extra skip P (every pair a child could
            add, `extra_pairs(teacher)`, is wired in times its mask)
  chan      one vector per layer output (teacher width): 1 on the channels
            the child keeps (the 'first'-k weight inheritance), re-applied
            after every layer — after BN too, which maps a zero channel to
            its shift.

Skips into one activation shape are summed one by one where that shape
has at most `STACK_ABOVE` possible pairs. Where it has more (ResNet-34's
widest stage: 730 pairs), the one-by-one sum makes XLA's compile time
explode (ResNet-34's training step did not compile in 10 minutes on a
CPU), so those sources are written into one buffer per shape and each
layer reads its skips as a single weighted sum over that buffer (15-25 s,
at ~10% more time per step than summing one by one where both compile).

Then one compiled program serves every child of the teacher, and
`jax.vmap` over (parameters, masks) trains K children at once. On the kept
channels the masked network computes what the materialised child computes,
and the gradients of the kept parameters are the child's
(tests/test_masked.py); `extract` turns trained masked variables into the
child's own.

Not supported: channel shuffles and grouped (non-depthwise) convolutions
(ShuffleNet), where the child's channel order is not a masked subset of the
teacher's; those teachers use the materialised path.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax.arch.core import Arch
from esnac_jax.arch.operators import check_child, removable_layers, skip_pairs
from esnac_jax.arch.widths import Space, analyse, is_depthwise
from esnac_jax.models.inherit import _space_index, inherit, kept_channels
from esnac_jax.models.network import ArchNet, layer_input

Masks = dict[str, Any]

# Above this many possible skip pairs into one activation shape, those
# skips are summed through a stacked buffer (see the module docstring).
STACK_ABOVE = 300


@dataclasses.dataclass(frozen=True)
class SkipPlan:
  """How MaskedNet sums each layer's extra skips.

  summed: layer -> ((pair, source), ...) added one by one.
  slot:   source layer -> (buffer, row) it is written to.
  rows:   buffer -> its number of rows.
  stacked: layer -> (buffer, rows read, row of each pair, pair indices).
  """
  summed: dict[int, tuple[tuple[int, int], ...]]
  slot: dict[int, tuple[int, int]]
  rows: dict[int, int]
  stacked: dict[int, tuple[int, int, np.ndarray, np.ndarray]]


def check_maskable(teacher: Arch) -> None:
  """Raises ValueError for teachers the masked path cannot represent."""
  for i, layer in enumerate(teacher.layers):
    grouped = layer.kind == 'conv' and layer.groups > 1 and \
        not is_depthwise(layer)
    if (layer.kind == 'shuffle' and layer.groups > 1) or grouped:
      raise ValueError(
          f"the masked path cannot run {teacher.name}: layer {i} "
          f"('{layer.name}') is a channel shuffle or grouped convolution, "
          "whose kept channels are not a masked subset of the teacher's; "
          "use the materialised path (config.distill.path='materialised')")
  moved = relaid_channels(teacher)
  if moved:
    i, j = moved[0]
    what = (f"removing layer {i} ('{teacher.layers[i].name}') passes on "
            'its input channels' if i == j else
            f"a skip from layer {i} ('{teacher.layers[i].name}') to layer "
            f"{j} ('{teacher.layers[j].name}') adds channels")
    raise ValueError(
        f'the masked path cannot run {teacher.name}: in a child, {what} '
        "that lie elsewhere in the teacher's tensors (e.g. a concat's "
        'output), which a masked subset of them cannot hold; use the '
        "materialised path (config.distill.path='materialised')")


@functools.lru_cache(maxsize=16)
def relaid_channels(teacher: Arch) -> tuple[tuple[int, int], ...]:
  """(from, to) layer pairs where a child moves channels between tensors
  laid out differently in the teacher: a removed layer (its input becomes
  its output) or an extra skip. The masked network keeps every channel at
  its teacher position, so there it would drop or misplace them."""
  sa = analyse(teacher)

  def same(a: Space, b: Space) -> bool:
    if a == b:
      return True
    return (a.hw == b.hw and len(a.atoms) == len(b.atoms) == 1 and
            sa.width[a.atoms[0]] == sa.width[b.atoms[0]])  # both [0, w)

  pairs = [(i, i)
           for i in removable_layers(teacher)
           if not same(sa.in_spaces[i], sa.out_spaces[i])]
  pairs += [(a, b)
            for a, b in extra_pairs(teacher)
            if not same(sa.out_spaces[a], sa.in_spaces[b])]
  return tuple(pairs)


class MaskedNet(ArchNet):
  """The teacher's network run under one candidate's masks.

  `arch` is the teacher; parameter names equal ArchNet's, so the teacher's
  variables (and anything inherited from them) plug in directly.
  `stack_above` is the skip-pair count per shape above which skips are
  read from a stacked buffer (same result, faster compile).
  """
  stack_above: int = STACK_ABOVE

  @nn.compact
  def __call__(self,
               x: jax.Array,
               masks: Masks,
               train: bool = False) -> jax.Array:
    arch = self.arch
    x = x.astype(self.dtype)
    removable = set(removable_layers(arch))
    plan = skip_plan(arch, self.stack_above)
    buffers: dict[int, jax.Array] = {}
    outs: list[jax.Array] = []
    last = arch.num_layers - 1
    for i, layer in enumerate(arch.layers):
      h = layer_input(arch, i, outs, x)
      if i != 0 and layer.kind != 'concat':  # extra skips add to sums
        for p, a in plan.summed.get(i, ()):
          h = h + masks['edge'][p].astype(self.dtype) * outs[a]
        if i in plan.stacked:
          b, n, rows, pairs = plan.stacked[i]
          w = jnp.zeros(n, self.dtype).at[rows].set(masks['edge'][pairs].astype(
              self.dtype))
          h = h + jnp.tensordot(w, buffers[b][:n], axes=1)
      y = self._apply(i, layer, h, train)
      if i in removable:
        y = jnp.where(masks['keep'][i] > 0, y, h)
      if i != last:
        y = y * masks['chan'][i].astype(self.dtype)
      outs.append(y)
      if i in plan.slot:
        b, row = plan.slot[i]
        if b not in buffers:
          buffers[b] = jnp.zeros((plan.rows[b],) + y.shape, y.dtype)
        buffers[b] = buffers[b].at[row].set(y)
    return outs[-1]


@functools.lru_cache(maxsize=16)
def extra_pairs(teacher: Arch) -> tuple[tuple[int, int], ...]:
  """The skip pairs a child may add: `skip_pairs` less the teacher's own
  edges (which every child has)."""
  own = set(teacher.edges)
  return tuple(p for p in skip_pairs(teacher) if p not in own)


@functools.lru_cache(maxsize=16)
def skip_plan(teacher: Arch, stack_above: int = STACK_ABOVE) -> SkipPlan:
  """Groups the extra pairs by the activation shape they carry; a group
  with more than `stack_above` pairs goes through a buffer, whose rows are
  its sources in layer order (so a layer reads a prefix of them)."""
  by_shape: dict[tuple, list[tuple[int, int, int]]] = {}
  for p, (a, b) in enumerate(extra_pairs(teacher)):
    by_shape.setdefault(teacher.layers[a].out_shape, []).append((p, a, b))
  summed: dict[int, list[tuple[int, int]]] = {}
  slot: dict[int, tuple[int, int]] = {}
  rows: dict[int, int] = {}
  stacked: dict[int, tuple[int, list[tuple[int, int]]]] = {}
  for group in by_shape.values():
    if len(group) <= stack_above:
      for p, a, b in group:
        summed.setdefault(b, []).append((p, a))
      continue
    buf = len(rows)
    sources = sorted({a for _, a, _ in group})
    rows[buf] = len(sources)
    slot.update({a: (buf, r) for r, a in enumerate(sources)})
    for p, a, b in group:
      stacked.setdefault(b, (buf, []))[1].append((p, slot[a][1]))
  return SkipPlan(summed={
      b: tuple(v) for b, v in summed.items()
  },
                  slot=slot,
                  rows=rows,
                  stacked={
                      b: (buf, max(r
                                   for _, r in v) + 1,
                          np.array([r
                                    for _, r in v]), np.array([p
                                                               for p, _ in v])
                         ) for b, (buf, v) in stacked.items()
                  })


def make_masked_model(teacher: Arch, dtype: Any = jnp.float32) -> MaskedNet:
  check_maskable(teacher)
  return MaskedNet(teacher, dtype)


def candidate_masks(teacher: Arch, child: Arch) -> Masks:
  """The masks that make the teacher's network compute `child`."""
  check_maskable(teacher)
  check_child(child, teacher)
  sa = analyse(teacher)
  kept = kept_channels(teacher, child, {}, 'first')
  chan = []
  for i, layer in enumerate(teacher.layers):
    m = np.zeros(layer.out_shape[-1], np.float32)
    m[_space_index(sa.out_spaces[i], kept, sa.width)] = 1.0
    chan.append(m)
  keep = np.array(
      [c.kind == t.kind for c, t in zip(child.layers, teacher.layers)],
      np.float32)
  have = set(child.edges)
  edge = np.array([p in have for p in extra_pairs(teacher)], np.float32)
  return {'keep': keep, 'edge': edge, 'chan': tuple(chan)}


def stack_masks(masks: list[Masks]) -> Masks:
  """K candidates' masks stacked on a leading axis (for vmap)."""
  return jax.tree_util.tree_map(lambda *a: np.stack(a), *masks)


def masked_variables(teacher_vars: dict, bn_stats: str = 'reset') -> dict:
  """A candidate's starting variables on the masked path: the teacher's
  parameters (every child inherits its kept slice of them), with BN
  statistics reset (the original) or inherited."""
  stats = teacher_vars.get('batch_stats', {})
  if bn_stats == 'reset':
    stats = {
        k: {
            'mean': np.zeros_like(v['mean']),
            'var': np.ones_like(v['var'])
        } for k, v in stats.items()
    }
  return {'params': teacher_vars['params'], 'batch_stats': stats}


def extract(teacher: Arch, child: Arch, masked_vars: dict) -> dict:
  """The child's own (materialised) variables from trained masked ones."""
  return inherit(teacher, child, jax.device_get(masked_vars), 'first',
                 'inherit')
