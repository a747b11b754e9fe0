"""Children of one teacher as arrays: a pool of M candidates drawn, sized and
featurised at once, without building an `Arch` per child.

A child of a teacher (see operators.py) is fixed by three arrays:
  removed [L] bool  layers replaced by identity rows;
  widths  [R] int   the width of every channel root of the teacher
                    (widths.analyse); roots that a removal ties together
                    share one width;
  skips   [P] bool  added skip connections, over operators.skip_pairs.
`Encoder(teacher, mode)` analyses the teacher once. `sample` then draws M
children with the distributions of `operators.sample`; `channels`,
`num_params`, `flops`, `features` and `keys` work on the whole pool; only
the few rows a searcher keeps become Archs (`decode`), and `encode` turns
Archs (the history, mutations) into rows.

Removing a conv ties its output root to its input root. `Encoder` supports
teachers where that input is one root of the same teacher width (every zoo
network); for others it raises `Unsupported` and callers fall back to the
per-Arch operators.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np

from esnac_jax.arch.core import KINDS, Arch, Layer, build_arch
from esnac_jax.arch.features import NORMALIZED_DIM, OFFSET_BUCKETS, _bucket
from esnac_jax.arch.operators import SamplerConfig, removable_layers, skip_pairs
from esnac_jax.arch.widths import MODES, Space, analyse, is_depthwise


class Unsupported(ValueError):
  """The teacher's structure is outside what the array encoding covers."""


@dataclasses.dataclass(frozen=True)
class Pool:
  """M children of one teacher as arrays (see the module docstring)."""
  removed: np.ndarray  # [M, L] bool
  widths: np.ndarray  # [M, R] int64
  skips: np.ndarray  # [M, P] bool

  def __len__(self) -> int:
    return self.removed.shape[0]

  def take(self, idx: Sequence[int] | np.ndarray) -> Pool:
    idx = np.asarray(idx, np.int64)
    return Pool(self.removed[idx], self.widths[idx], self.skips[idx])

  @staticmethod
  def concat(pools: Sequence[Pool]) -> Pool:
    return Pool(*(np.concatenate([getattr(p, f)
                                  for p in pools])
                  for f in ('removed', 'widths', 'skips')))


def _space_matrix(spaces: Sequence[Space], rix: dict[int, int],
                  r: int) -> np.ndarray:
  """[L, R] counts: a layer's channels are widths @ matrix.T."""
  m = np.zeros((len(spaces), r), np.int64)
  for i, s in enumerate(spaces):
    for a in s.atoms:
      m[i, rix[a]] += s.hw
  return m


class Encoder:
  """The array form of one teacher's children (pure given the teacher)."""

  def __init__(self, teacher: Arch, mode: str = 'by_width'):
    if mode not in MODES:
      raise ValueError(f'unknown group_mode {mode!r}; use one of {MODES}')
    self.teacher, self.mode = teacher, mode
    t = teacher
    sa = analyse(t)
    self.num_layers = t.num_layers
    self.roots = tuple(sa.roots)
    rix = {r: k for k, r in enumerate(self.roots)}
    nr = len(self.roots)
    self.teacher_width = np.array([sa.width[r] for r in self.roots], np.int64)
    self.fixed = np.array([r in sa.fixed for r in self.roots])
    self.in_mat = _space_matrix(sa.in_spaces, rix, nr)
    self.out_mat = _space_matrix(sa.out_spaces, rix, nr)
    self._in_mat_t = self.in_mat.T.astype(np.float64)
    self._out_mat_t = self.out_mat.T.astype(np.float64)
    self.removable = np.array(removable_layers(t), np.int64)
    self.depthwise = np.array([is_depthwise(l) for l in t.layers])

    # A removed (non-depthwise) conv: its output root joins its input root.
    # One reading a concatenation binds its output root to the sum of the
    # concatenated roots (a width no longer free).
    merges, binds = [], []
    for i in self.removable:
      layer = t.layers[i]
      if layer.kind != 'conv' or self.depthwise[i]:
        continue
      s_in, s_out = sa.in_spaces[i], sa.out_spaces[i]
      if s_in.hw != 1 or s_out.hw != 1 or len(s_out.atoms) != 1:
        raise Unsupported(f"removable conv {i} ('{layer.name}') writes a "
                          'concatenated or flattened channel space')
      b = rix[s_out.atoms[0]]
      parts = tuple(rix[a] for a in s_in.atoms)
      if self.teacher_width[list(parts)].sum() != self.teacher_width[b]:
        raise Unsupported(f'removable conv {i} joins roots of different '
                          'teacher widths')
      if b in parts and len(parts) > 1:
        raise Unsupported(f'removable conv {i} would bind a root to itself')
      if len(parts) > 1:
        binds.append((int(i), b, parts))
      elif parts[0] != b:
        merges.append((int(i), parts[0], b))
    self.merges, self.binds = tuple(merges), tuple(binds)

    # Divisibility constraints (grouped convs, shuffles): layer, roots, g.
    cons = []
    for i, layer in enumerate(t.layers):
      if layer.kind == 'conv' and layer.groups > 1 and not self.depthwise[i]:
        spaces = (sa.in_spaces[i], sa.out_spaces[i])
      elif layer.kind == 'shuffle' and layer.groups > 1:
        spaces = (sa.in_spaces[i],)
      else:
        continue
      roots = sorted({rix[a] for s in spaces for a in s.atoms})
      cons.append((i, tuple(roots), layer.groups))
    self.constraints = tuple(cons)

    # by_width: one knob per teacher width; fine: one per (merged) root.
    widths = sorted(set(self.teacher_width.tolist()))
    self.cluster = np.array([widths.index(w) for w in self.teacher_width])

    pairs = skip_pairs(t)
    edges = set(t.edges)
    keep = [p for p in pairs if p not in edges]
    self.pairs = np.array(keep, np.int64).reshape(-1, 2)
    # An added skip ties the channel roots of its two ends, pairwise.
    ties, self.can_mutate = [], True
    for p, (i, j) in enumerate(keep):
      s_i, s_j = sa.out_spaces[i], sa.in_spaces[j]
      if len(s_i.atoms) != len(s_j.atoms):
        self.can_mutate = False
      for a, b in zip(s_i.atoms, s_j.atoms):
        if a != b:
          ties.append((p, rix[a], rix[b]))
    self.skip_ties = tuple(ties)
    self.pair_index = {p: k for k, p in enumerate(keep)}
    self.teacher_edges = frozenset(edges)
    self.in_deg = np.array([len(e) for e in t.in_edges], np.int64)
    self.out_deg = np.array([len(e) for e in t.out_edges], np.int64)
    self.in_spatial = np.array([math.prod(l.in_shape[:-1]) for l in t.layers],
                               np.int64)
    self.out_spatial = np.array([math.prod(l.out_shape[:-1]) for l in t.layers],
                                np.int64)
    self.kind = np.array([KINDS.index(l.kind) for l in t.layers])
    self.kernel = np.array([l.kernel for l in t.layers], np.int64)
    self.groups = np.array([l.groups for l in t.layers], np.int64)
    self.bias = np.array([l.bias for l in t.layers], np.int64)
    self.t_in = np.array([l.in_shape[-1] for l in t.layers], np.float64)
    self.t_out = np.array([l.out_shape[-1] for l in t.layers], np.float64)

  # ---- drawing -------------------------------------------------------------

  def _labels(self,
              removed: np.ndarray,
              skips: np.ndarray | None = None) -> np.ndarray:
    """[M, R]: every root's component after the removals (and the ties of
    added skips, if given), named by a root index."""
    m = removed.shape[0]
    lab = np.broadcast_to(np.arange(len(self.roots)),
                          (m, len(self.roots))).copy()
    joins = [(removed[:, i], a, b) for i, a, b in self.merges]
    if skips is not None:
      joins += [(skips[:, p], a, b) for p, a, b in self.skip_ties]
    for act, a, b in joins:
      if not act.any():
        continue
      la, lb = lab[:, a], lab[:, b]
      lo = np.minimum(la, lb)[:, None]
      hit = act[:, None] & ((lab == la[:, None]) | (lab == lb[:, None]))
      lab = np.where(hit, lo, lab)
    return lab

  def sample(self,
             rng: np.random.Generator,
             m: int,
             cfg: SamplerConfig = SamplerConfig()) -> Pool:
    """m children drawn as `operators.sample` draws one: each removable
    layer goes with p1 (one p1 per child), each width knob of the child
    shrinks by r ~ U(shrink_range), each new skip whose shapes agree joins
    with p3 (one p3 per child)."""
    if cfg.group_mode != self.mode:
      raise ValueError(f'the encoder groups widths {self.mode!r}, the sampler '
                       f'{cfg.group_mode!r}')
    n, nr = self.num_layers, len(self.roots)
    ar = np.arange(m)
    p1 = rng.choice(np.asarray(cfg.remove_probs, np.float64), size=m)
    removed = np.zeros((m, n), bool)
    removed[:, self.removable] = (rng.random((m, len(self.removable)))
                                  < p1[:, None])
    lab = self._labels(removed)
    div, fixed, bound = self._divisors(removed, lab)

    gid = (np.broadcast_to(self.cluster,
                           (m, nr)) if self.mode == 'by_width' else lab)
    ng = nr
    gdiv = np.ones((m, ng), np.int64)
    for r in range(nr):
      cur = gdiv[ar, gid[:, r]]
      gdiv[ar, gid[:, r]] = np.where(fixed[:, r] | bound[:, r], cur,
                                     np.lcm(cur, div[:, r]))
    ratio = rng.uniform(*cfg.shrink_range, size=(m, ng))
    f = self.teacher_width[None, :]
    r_of = np.take_along_axis(ratio, gid, 1)
    d_of = np.take_along_axis(gdiv, gid, 1)
    w = np.maximum(1, ((1.0 - r_of) * f).astype(np.int64))
    w = -(-w // d_of) * d_of
    w = np.minimum(np.maximum(w, d_of), f)
    widths = self._resolve(removed, lab, np.where(fixed, f, w))

    p3 = rng.choice(np.asarray(cfg.skip_probs, np.float64), size=m)
    skips = np.zeros((m, len(self.pairs)), bool)
    if len(self.pairs):
      # Bernoulli(p3) over every pair, kept where the skip fits: the same law
      # as drawing over the fitting pairs only, at the cost of the hits.
      rows, cols = _bernoulli_hits(rng, p3, len(self.pairs))
      cin, cout = self.channels(widths)
      i, j = self.pairs[cols, 0], self.pairs[cols, 1]
      ok = ~removed[rows, j] & (cout[rows, i] == cin[rows, j])
      skips[rows[ok], cols[ok]] = True
    return Pool(removed, widths, skips)

  def mutate(
      self,
      parents: Pool,
      rng: np.random.Generator,
      cfg: SamplerConfig = SamplerConfig()
  ) -> tuple[Pool, np.ndarray]:
    """One small change to every row, as `operators.mutate`: remove or
    restore one layer, resize one width knob, add or drop one skip, the
    kind drawn among those that apply to the row. Returns the children and
    a mask of rows that changed (a resize that kept its width did not)."""
    if not self.can_mutate:
      raise Unsupported('skips of this teacher join concatenations of '
                        'different lengths')
    m = len(parents)
    ar = np.arange(m)
    removed = parents.removed.copy()
    widths = parents.widths.copy()
    skips = parents.skips.copy()
    cin, cout = self.channels(widths)
    teacher_removable = np.zeros(self.num_layers, bool)
    teacher_removable[self.removable] = True
    kind_t = self.kind
    can_remove = teacher_removable & ~removed & (cin == cout)
    can_restore = removed.copy()
    is_conv = kind_t == KINDS.index('conv')
    g = np.where(self.depthwise, 1, np.maximum(self.groups, 1))
    can_restore &= ~is_conv | (cin % g == 0)
    can_add = self.skip_ok(removed, widths, skips)
    lab = self._labels(removed, skips)
    div, fixed, bound = self._divisors(removed, lab)
    gid = np.where(
        fixed | bound, -1, lab if self.mode == 'fine' else np.broadcast_to(
            self.cluster, lab.shape))
    can_resize = (gid >= 0)
    options = [can_remove, can_restore, can_resize, can_add, skips]
    ok = np.stack([o.any(1) for o in options], 1)
    u = rng.random((m, len(options))) * ok
    op = np.where(ok.any(1), np.argmax(u, 1), -1)
    pick = [_pick(rng, o) for o in options]
    changed = op >= 0

    r = op == 0
    i = pick[0][r]
    removed[ar[r], i] = True
    if len(self.pairs):  # skips ending at a removed layer go with it
      skips[r] &= self.pairs[:, 1][None, :] != i[:, None]
    r = op == 1
    removed[ar[r], pick[1][r]] = False
    r = op == 3
    skips[ar[r], pick[3][r]] = True
    r = op == 4
    skips[ar[r], pick[4][r]] = False

    r = np.flatnonzero(op == 2)
    if len(r):
      root = pick[2][r]
      grp = gid[r, root]
      members = gid[r] == grp[:, None]
      d = np.ones(len(r), np.int64)
      for k in range(len(self.roots)):
        d = np.where(members[:, k], np.lcm(d, div[r, k]), d)
      f = self.teacher_width[root]
      cur = widths[r, root]
      redraw = rng.random(len(r)) < 0.25
      w_prior = np.maximum(1, ((1.0 - rng.uniform(*cfg.shrink_range, len(r))) *
                               f).astype(np.int64))
      w_step = np.round(cur * rng.uniform(0.5, 1.5, len(r))).astype(np.int64)
      w = np.where(redraw, w_prior, w_step)
      w = np.minimum(np.maximum(-(-w // d) * d, d), f)
      widths[r] = np.where(members, w[:, None], widths[r])
      widths[r] = self._resolve(removed[r], self._labels(removed[r], skips[r]),
                                widths[r])
      changed[r] = w != cur
    return Pool(removed, widths, skips), changed

  def _divisors(self, removed: np.ndarray,
                lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[M, R] each root's divisibility (its component's active grouped
    convs and shuffles), whether it is tied to the input or output, and
    whether a removal bound it to a sum of other roots."""
    m, nr = lab.shape
    ar = np.arange(m)
    fixed_c = np.zeros((m, nr), bool)
    div_c = np.ones((m, nr), np.int64)
    bound = np.zeros((m, nr), bool)
    for i, b, _ in self.binds:
      bound |= removed[:, i, None] & (lab == lab[:, b, None])
    for r in np.flatnonzero(self.fixed):
      fixed_c[ar, lab[:, r]] = True

    def apply(r: int, act: np.ndarray, g: int, depth: int = 0) -> None:
      if depth > len(self.binds):
        raise Unsupported('bindings of removed convs form a cycle')
      rest = act.copy()
      for i, b, parts in self.binds:
        hit = act & removed[:, i] & (lab[:, b] == lab[:, r])
        if hit.any():  # a bound width: each summand takes the divisor
          rest &= ~hit
          for p in parts:
            apply(p, hit, g, depth + 1)
      cur = div_c[ar, lab[:, r]]
      div_c[ar, lab[:, r]] = np.where(rest, np.lcm(cur, g), cur)

    for i, roots, g in self.constraints:
      for r in roots:
        apply(r, ~removed[:, i], g)
    return (np.take_along_axis(div_c, lab,
                               1), np.take_along_axis(fixed_c, lab, 1), bound)

  def _resolve(self, removed: np.ndarray, lab: np.ndarray,
               widths: np.ndarray) -> np.ndarray:
    """`widths` with every bound component set to the sum of its parts
    (in layer order, so a part bound earlier is already resolved)."""
    for i, b, parts in self.binds:
      hit = removed[:, i, None] & (lab == lab[:, b, None])
      if hit.any():
        total = widths[:, list(parts)].sum(1)
        widths = np.where(hit, total[:, None], widths)
    return widths

  def skip_ok(self,
              removed: np.ndarray,
              widths: np.ndarray,
              skips: np.ndarray | None = None) -> np.ndarray:
    """[M, P]: skips that could be added now (target present, channels
    agree, not already there)."""
    if not len(self.pairs):
      return np.zeros((removed.shape[0], 0), bool)
    cin, cout = self.channels(widths)
    i, j = self.pairs[:, 0], self.pairs[:, 1]
    ok = ~removed[:, j] & (cout[:, i] == cin[:, j])
    return ok if skips is None else ok & ~skips

  # ---- what a pool is --------------------------------------------------------

  def channels(self, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[M, L] input and output channels (last dimension) of every layer."""
    w = widths.astype(np.float64)
    return ((w @ self._in_mat_t).astype(np.int64),
            (w @ self._out_mat_t).astype(np.int64))

  def _ops(self, pool: Pool):
    cin, cout = self.channels(pool.widths)
    present = ~pool.removed
    kind = np.where(pool.removed, KINDS.index('identity'), self.kind)
    groups = np.where(self.depthwise, cin, self.groups)
    in_deg = self.in_deg + self._count(pool.skips, 1)
    out_deg = self.out_deg + self._count(pool.skips, 0)
    return cin, cout, present, kind, groups, in_deg, out_deg

  def _count(self, skips: np.ndarray, end: int) -> np.ndarray:
    """[M, L]: added skips leaving (end=0) or entering (end=1) each layer."""
    m, n = skips.shape[0], self.num_layers
    rows, cols = np.nonzero(skips)
    idx = rows * n + self.pairs[cols, end] if len(rows) else rows
    return np.bincount(idx, minlength=m * n).reshape(m, n)

  def num_params(self, pool: Pool) -> np.ndarray:
    """[M] int64, as Arch.num_params."""
    cin, cout, _, kind, groups, _, _ = self._ops(pool)
    conv = kind == KINDS.index('conv')
    lin = kind == KINDS.index('linear')
    bn = kind == KINDS.index('bn')
    k2 = self.kernel**2
    p = np.where(conv, k2 * (cin // np.maximum(groups, 1)) * cout, 0)
    p += np.where(lin, cin * cout, 0)
    p += np.where(conv | lin, self.bias * cout, 0)
    p += np.where(bn, 2 * cout, 0)
    return p.sum(1)

  def flops(self, pool: Pool) -> np.ndarray:
    """[M] int64, as Arch.flops."""
    cin, cout, _, kind, groups, in_deg, _ = self._ops(pool)
    out = self.out_spatial * cout
    k2 = self.kernel**2

    def is_(k: str) -> np.ndarray:
      return kind == KINDS.index(k)

    conv, lin = is_('conv'), is_('linear')
    f = np.where(
        conv, 2 * out * k2 * (cin // np.maximum(groups, 1)) + self.bias * out,
        0)
    f += np.where(lin, 2 * cin * cout + self.bias * cout, 0)
    f += np.where(is_('bn'), 2 * out, 0)
    f += np.where(is_('relu'), out, 0)
    f += np.where(is_('maxpool') | is_('avgpool'), out * k2, 0)
    extra = np.where(~is_('concat'), np.maximum(in_deg - 1, 0), 0)
    f += extra * self.in_spatial * cin
    return f.sum(1)

  def keys(self, pool: Pool) -> list[bytes]:
    """One hashable key per child, equal to `arch_key(decode(...))`."""
    _, cout = self.channels(pool.widths)
    rows = np.concatenate(
        [pool.removed.astype(np.int64), cout,
         pool.skips.astype(np.int64)], 1)
    return [r.tobytes() for r in rows]

  def arch_key(self, arch: Arch) -> bytes:
    return self.keys(self.encode([arch]))[0]

  def features(self,
               pool: Pool,
               kind: str = 'original',
               max_offset: int = 128) -> np.ndarray:
    """[M, L, F] float32, equal to features.batch_features of the Archs."""
    if kind == 'original':
      return self._original(pool, max_offset)
    if kind == 'normalized':
      return self._normalized(pool)
    raise ValueError(f"unknown feature kind {kind!r}; use 'original' or "
                     "'normalized'")

  def _static_edges(self):
    return np.array(sorted(self.teacher_edges), np.int64).reshape(-1, 2)

  def _original(self, pool: Pool, max_offset: int) -> np.ndarray:
    cin, cout, present, kind, groups, _, _ = self._ops(pool)
    m, n = pool.removed.shape
    x = np.zeros((m, n, 16 + 2 * max_offset), np.float32)
    nk = len(KINDS)
    x[:, :, :nk] = np.eye(nk, dtype=np.float32)[kind]
    t = self.teacher.layers
    ksp = np.array([[l.kernel, l.stride, l.padding]
                    if l.kind in ('conv', 'maxpool', 'avgpool') else [0, 0, 0]
                    for l in t], np.float32)
    x[:, :, nk:nk + 3] = present[..., None] * ksp
    has_g = (kind == KINDS.index('conv')) | (kind == KINDS.index('shuffle'))
    x[:, :, nk + 3] = np.where(has_g, groups, 0)
    io = (kind == KINDS.index('conv')) | (kind == KINDS.index('linear'))
    x[:, :, nk + 4] = np.where(io, cin, 0)
    x[:, :, nk + 5] = np.where(io, cout, 0)
    e = self._static_edges()
    if len(e):
      off = e[:, 1] - e[:, 0]
      k = off < max_offset
      x[:, e[k, 1], 16 + off[k]] = 1.0
      x[:, e[k, 0], 16 + max_offset + off[k]] = 1.0
    rows, cols = np.nonzero(pool.skips)
    a, b = self.pairs[cols, 0], self.pairs[cols, 1]
    off = b - a
    k = off < max_offset
    x[rows[k], b[k], 16 + off[k]] = 1.0
    x[rows[k], a[k], 16 + max_offset + off[k]] = 1.0
    return x

  def _normalized(self, pool: Pool) -> np.ndarray:
    cin, cout, present, kind, groups, in_deg, out_deg = self._ops(pool)
    m, n = pool.removed.shape
    nk = len(KINDS)
    x = np.zeros((m, n, NORMALIZED_DIM), np.float32)
    x[:, :, :nk] = np.eye(nk, dtype=np.float32)[kind]
    t = self.teacher.layers
    ksp = np.array([[
        math.log2(1 + l.kernel),
        math.log2(1 + l.stride),
        math.log2(1 + l.padding)
    ] if l.kind in ('conv', 'maxpool', 'avgpool') else [0, 0, 0]
                    for l in t], np.float32)
    x[:, :, nk:nk + 3] = present[..., None] * ksp
    has_g = (kind == KINDS.index('conv')) | (kind == KINDS.index('shuffle'))
    x[:, :, nk + 3] = np.where(has_g, np.log2(np.maximum(groups, 1)), 0)
    x[:, :, nk + 4] = cin / self.t_in
    x[:, :, nk + 5] = cout / self.t_out
    x[:, :, nk + 6] = np.log2(cin) / 10.0
    x[:, :, nk + 7] = np.log2(cout) / 10.0
    x[:, :, nk + 8] = pool.removed & (self.kind != KINDS.index('identity'))
    x[:, :, nk + 9] = in_deg / 4.0
    x[:, :, nk + 10] = out_deg / 4.0
    base = nk + 11
    e = self._static_edges()
    for (a, b) in e:
      k = _bucket(int(b - a))
      x[:, b, base + k] = 1.0
      x[:, a, base + OFFSET_BUCKETS + k] = 1.0
    rows, cols = np.nonzero(pool.skips)
    a, b = self.pairs[cols, 0], self.pairs[cols, 1]
    bk = self._pair_bucket[cols]
    x[rows, b, base + bk] = 1.0
    x[rows, a, base + OFFSET_BUCKETS + bk] = 1.0
    return x

  @functools.cached_property
  def _pair_bucket(self) -> np.ndarray:
    return np.array([_bucket(int(b - a)) for a, b in self.pairs], np.int64)

  # ---- Archs ---------------------------------------------------------------

  def decode(self, pool: Pool, k: int = 0) -> Arch:
    """Row k as an Arch, built and checked by the operators."""
    t = self.teacher
    removed = pool.removed[k]
    cin, cout = self.channels(pool.widths[k:k + 1])
    cin, cout = cin[0], cout[0]
    layers = []
    for i, l in enumerate(t.layers):
      if removed[i]:
        layers.append(Layer('identity', l.in_shape, l.out_shape, name=l.name))
        continue
      if l.kind in ('conv', 'linear'):
        c_in, c_out = int(cin[i]), int(cout[i])
        g = c_in if self.depthwise[i] else l.groups
        l = l.replace(in_channels=c_in, out_channels=c_out, groups=g)
      layers.append(l)
    edges = list(t.edges) + [
        tuple(int(v)
              for v in self.pairs[p])
        for p in np.flatnonzero(pool.skips[k])
    ]
    return build_arch(t.input_shape, layers, edges, t.name)

  def encode(self, archs: Sequence[Arch]) -> Pool:
    """Rows of the given children of the teacher (the inverse of decode)."""
    n, nr = self.num_layers, len(self.roots)
    removed = np.zeros((len(archs), n), bool)
    widths = np.zeros((len(archs), nr), np.int64)
    skips = np.zeros((len(archs), len(self.pairs)), bool)
    root_layer = self._root_layer
    for k, a in enumerate(archs):
      if a.num_layers != n:
        raise ValueError(f'the arch has {a.num_layers} layers, its teacher {n}')
      for i, (l, tl) in enumerate(zip(a.layers, self.teacher.layers)):
        removed[k, i] = l.kind == 'identity' and tl.kind != 'identity'
      for r, i in enumerate(root_layer):
        widths[k, r] = (self.teacher_width[r]
                        if i < 0 else a.layers[i].out_shape[-1])
      for e in a.edges:
        if e in self.teacher_edges:
          continue
        p = self.pair_index.get(e)
        if p is None:
          raise ValueError(f'edge {e} is neither a teacher edge nor a skip')
        skips[k, p] = True
    return Pool(removed, widths, skips)

  @functools.cached_property
  def _root_layer(self) -> tuple[int, ...]:
    """For every root, a layer whose output is exactly that root (-1: the
    network input)."""
    sa = analyse(self.teacher)
    out = []
    for r in self.roots:
      if r < 0:
        out.append(-1)
        continue
      hits = [i for i, s in enumerate(sa.out_spaces) if s == Space(1, (r,))]
      out.append(hits[0] if hits else r)
    return tuple(out)


def _pick(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
  """[M]: a uniformly chosen True column of every row (0 where none)."""
  if mask.shape[1] == 0:
    return np.zeros(mask.shape[0], np.int64)
  return np.argmax(rng.random(mask.shape) * mask, 1)


def _bernoulli_hits(rng: np.random.Generator, p: np.ndarray,
                    n: int) -> tuple[np.ndarray, np.ndarray]:
  """(rows, cols) where U[row, col] < p[row] for a [len(p), n] uniform U,
  drawn as geometric gaps so the cost follows the hits, not len(p) * n."""
  m = len(p)
  rows_out, cols_out = [], []
  todo = np.flatnonzero(p > 0)
  pmax = float(p.max()) if m else 0.0
  k = int(n * pmax + 8 * math.sqrt(n * pmax + 1) + 16)
  while len(todo):
    gaps = rng.geometric(p[todo, None], size=(len(todo), k))
    pos = np.cumsum(gaps, 1) - 1
    short = pos[:, -1] < n - 1  # rare: the k gaps did not reach the end
    keep = ~short
    r, c = np.nonzero((pos < n) & keep[:, None])
    rows_out.append(todo[r])
    cols_out.append(pos[r, c])
    todo, k = todo[short], 2 * k
  if not rows_out:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  return np.concatenate(rows_out), np.concatenate(cols_out)


@functools.lru_cache(maxsize=16)
def encoder(teacher: Arch, mode: str = 'by_width') -> Encoder | None:
  """The teacher's encoder, or None when its structure is unsupported."""
  try:
    return Encoder(teacher, mode)
  except Unsupported:
    return None


__all__ = ['Encoder', 'Pool', 'Unsupported', 'encoder']
