"""Channel spaces: which widths must stay equal so any shrink stays valid.

Every conv or linear output that is not depthwise starts a new channel
*atom*, named by the index of the layer that produces it (-1 is the network
input). A tensor's channel space is a list of atoms (concat joins lists) times
a spatial factor (flatten multiplies by H*W). A summed input ties the spaces
of its summands; a depthwise conv keeps its input's space. Solving these ties
with union-find gives the free width knobs of an architecture, found from
its structure alone, so ShuffleNet's concats and MobileNetV2's depthwise
convs need no special cases.

Two grouping modes:
  'by_width'  the original: atoms with the same teacher width share one knob
              (4 knobs for VGG-19 and the ResNets);
  'fine'      only structurally tied atoms share a knob (per residual stream
              and per block inner width; finer per-stage control).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

from esnac_jax.arch.core import Arch, Layer

INPUT_ATOM = -1
MODES = ('by_width', 'fine')


@dataclasses.dataclass(frozen=True)
class Space:
  """A tensor's channels: `hw` repeats of the concatenated `atoms` (roots)."""
  hw: int
  atoms: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class WidthGroup:
  """One width knob: atoms (producing layer indices) that share a width.

  width: the current width of each atom; teacher_width: the teacher's;
  divisor: every width of the group must be a multiple of it (grouped convs,
  channel shuffles).
  """
  atoms: tuple[int, ...]
  width: int
  teacher_width: int
  divisor: int


class _UnionFind:
  """Atoms with union and binding to a concatenation of other atoms."""

  def __init__(self):
    self.parent: dict[int, int] = {}
    self.binding: dict[int, tuple[int, ...]] = {}

  def find(self, a: int) -> int:
    self.parent.setdefault(a, a)
    root = a
    while self.parent[root] != root:
      root = self.parent[root]
    while self.parent[a] != root:
      self.parent[a], a = root, self.parent[a]
    return root

  def expand(self, atoms: Sequence[int], depth: int = 0) -> tuple[int, ...]:
    if depth > 64:
      raise ValueError('channel spaces bind cyclically')
    out: list[int] = []
    for a in atoms:
      r = self.find(a)
      if r in self.binding:
        out.extend(self.expand(self.binding[r], depth + 1))
      else:
        out.append(r)
    return tuple(out)

  def unify(self, p: Sequence[int], q: Sequence[int], where: str) -> None:
    p, q = self.expand(p), self.expand(q)
    if p == q:
      return
    if len(p) == len(q):
      for a, b in zip(p, q):
        self._union(a, b, where)
    elif len(p) == 1:
      self._bind(p[0], q, where)
    elif len(q) == 1:
      self._bind(q[0], p, where)
    else:
      raise ValueError(f'{where}: cannot tie channel spaces made of '
                       f'{len(p)} and {len(q)} concatenated parts')

  def _union(self, a: int, b: int, where: str) -> None:
    # Called with expanded (unbound) roots only.
    ra, rb = self.find(a), self.find(b)
    if ra != rb:
      self.parent[rb] = ra

  def _bind(self, a: int, parts: tuple[int, ...], where: str) -> None:
    r = self.find(a)
    if r in parts:
      raise ValueError(f'{where}: a channel space would contain itself')
    self.binding[r] = parts


@dataclasses.dataclass(frozen=True)
class SpaceAnalysis:
  """Per-layer input/output channel spaces of one Arch, all ties solved."""
  in_spaces: tuple[Space, ...]
  out_spaces: tuple[Space, ...]
  roots: tuple[int, ...]  # free atoms (each one a width)
  root_of: dict[int, int]  # every atom -> its root
  fixed: frozenset[int]  # roots tied to input or output
  divisor: dict[int, int]  # root -> required multiple
  width: dict[int, int]  # root -> width in this Arch

  def space_width(self, s: Space) -> int:
    return s.hw * sum(self.width[a] for a in s.atoms)


def is_depthwise(layer: Layer) -> bool:
  """A conv with one group per channel (its output keeps its input space)."""
  return (layer.kind == 'conv' and layer.groups > 1 and
          layer.groups == layer.in_channels == layer.out_channels)


def analyse(arch: Arch, teacher: Arch | None = None) -> SpaceAnalysis:
  """Solves the channel-space ties of `arch`.

  `teacher` decides which convs are depthwise (a shrunk depthwise conv of
  width 2 with 2 groups would otherwise look like a grouped conv); it
  defaults to `arch` itself.
  """
  return _analyse(arch, teacher or arch)


@functools.lru_cache(maxsize=4096)
def _analyse(arch: Arch, teacher: Arch) -> SpaceAnalysis:
  if teacher.num_layers != arch.num_layers:
    raise ValueError(f'the arch has {arch.num_layers} layers but its teacher '
                     f'has {teacher.num_layers}')
  uf = _UnionFind()
  raw_in: list[Space] = []
  raw_out: list[Space] = []
  widths: dict[int, int] = {INPUT_ATOM: arch.input_shape[-1]}
  constraints: list[tuple[Space, int]] = []
  uf.find(INPUT_ATOM)
  for i, layer in enumerate(arch.layers):
    where = f"layer {i} ('{layer.name}', {layer.kind})"
    srcs = ([Space(1, (INPUT_ATOM,))]
            if i == 0 else [raw_out[j] for j in arch.in_edges[i]])
    if layer.kind == 'concat':
      atoms: list[int] = []
      for s in srcs:
        atoms.extend(s.atoms)
      inp = Space(1, tuple(atoms))
    else:
      inp = srcs[0]
      for s in srcs[1:]:
        if s.hw != inp.hw:
          raise ValueError(f'{where}: sums flattened and unflattened inputs')
        uf.unify(inp.atoms, s.atoms, where)
    kind = layer.kind
    if kind == 'conv' and is_depthwise(teacher.layers[i]):
      out = inp
    elif kind in ('conv', 'linear'):
      out = Space(1, (i,))
      uf.find(i)
      widths[i] = layer.out_channels
      if kind == 'conv' and layer.groups > 1:
        constraints.append((inp, layer.groups))
        constraints.append((out, layer.groups))
    elif kind == 'flatten':
      h, w, _ = layer.in_shape
      out = Space(inp.hw * h * w, inp.atoms)
    else:
      out = inp
      if kind == 'shuffle' and layer.groups > 1:
        constraints.append((inp, layer.groups))
    raw_in.append(inp)
    raw_out.append(out)

  def solve(s: Space) -> Space:
    return Space(s.hw, uf.expand(s.atoms))

  in_spaces = tuple(solve(s) for s in raw_in)
  out_spaces = tuple(solve(s) for s in raw_out)
  atoms = sorted(widths)
  root_of = {a: uf.find(a) for a in atoms}
  roots = sorted({r for r in root_of.values() if r not in uf.binding})
  width = {r: widths[r] for r in roots}
  fixed = set(uf.expand((INPUT_ATOM,))) | set(out_spaces[-1].atoms)
  divisor = {r: 1 for r in roots}
  for s, g in constraints:
    for a in uf.expand(s.atoms):
      divisor[a] = math.lcm(divisor[a], g)
  return SpaceAnalysis(in_spaces, out_spaces, tuple(roots), root_of,
                       frozenset(fixed), divisor, width)


def width_groups(arch: Arch,
                 teacher: Arch,
                 mode: str = 'by_width') -> tuple[WidthGroup, ...]:
  """The free width knobs of `arch`, a child (or the teacher) of `teacher`.

  Ties come from the candidate's own structure: a removed conv (identity)
  ties its input and output widths, an added skip ties its two ends.
  """
  if mode not in MODES:
    raise ValueError(f'unknown width-group mode {mode!r}; use one of {MODES}')
  sa = analyse(arch, teacher)
  tw = _teacher_widths(teacher)
  free = [r for r in sa.roots if r not in sa.fixed]
  clusters: dict[object, list[int]] = {}
  for r in free:
    key = tw[r] if mode == 'by_width' else r
    clusters.setdefault(key, []).append(r)
  members_of: dict[int, list[int]] = {}
  for a, r in sa.root_of.items():
    members_of.setdefault(r, []).append(a)

  def atoms(roots: list[int]) -> tuple[int, ...]:
    return tuple(sorted(a for r in roots for a in members_of[r]))

  groups = []
  for members in clusters.values():
    div = math.lcm(*(sa.divisor[r] for r in members))
    widths = {sa.width[r] for r in members}
    if len(widths) != 1:
      # Grouped by teacher width but shrunk apart (possible only when an Arch
      # was edited by hand): keep them as separate knobs.
      for r in members:
        groups.append(WidthGroup(atoms([r]), sa.width[r], tw[r], sa.divisor[r]))
      continue
    groups.append(WidthGroup(atoms(members), widths.pop(), tw[members[0]], div))
  return tuple(sorted(groups, key=lambda g: g.atoms))


def _teacher_widths(teacher: Arch) -> dict[int, int]:
  out = {INPUT_ATOM: teacher.input_shape[-1]}
  for i, layer in enumerate(teacher.layers):
    if layer.kind in ('conv', 'linear'):
      out[i] = layer.out_channels
  return out


def set_widths(arch: Arch, teacher: Arch, new: dict[int, int]) -> Arch:
  """`arch` with the atoms in `new` (atom -> width) resized.

  Every conv/linear takes its in/out channels from its spaces, depthwise
  convs keep one group per channel, and shapes are re-inferred. Raises
  ValueError for a width that breaks a divisibility or a fixed width.
  """
  from esnac_jax.arch.core import build_arch  # local: avoid a cycle
  sa = analyse(arch, teacher)
  width = dict(sa.width)
  for atom, w in new.items():
    r = sa.root_of.get(atom, atom)
    if r not in width:
      raise ValueError(f'atom {atom} is not a free width of this arch')
    if r in sa.fixed and w != width[r]:
      raise ValueError(f'atom {atom} is tied to the network input or output '
                       'and cannot change width')
    if w < 1 or w % sa.divisor[r]:
      raise ValueError(f'width {w} for atom {atom} must be a positive multiple '
                       f'of {sa.divisor[r]} (grouped conv or shuffle)')
    width[r] = int(w)

  def sw(s: Space) -> int:
    return s.hw * sum(width[a] for a in s.atoms)

  layers = []
  for i, layer in enumerate(arch.layers):
    if layer.kind in ('conv', 'linear'):
      cin, cout = sw(sa.in_spaces[i]), sw(sa.out_spaces[i])
      groups = layer.groups
      if layer.kind == 'conv' and is_depthwise(teacher.layers[i]):
        groups = cin
      layer = layer.replace(in_channels=cin, out_channels=cout, groups=groups)
    layers.append(layer)
  return build_arch(arch.input_shape, layers, arch.edges, arch.name)
