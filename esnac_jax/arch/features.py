"""Per-layer feature arrays [layers, features] for the surrogate's LSTM.

'original': the original's 272 numbers per layer (layer.py `init_rep`,
  architecture.py `init_rep`): a 10-way kind one-hot, kernel, stride,
  padding, groups, in/out channels (conv and linear only), raw and
  unnormalised; then one-hots of in-link offsets (i - j) and out-link
  offsets (j - i) in 128 slots each. Offsets of 128 or more (possible only
  past 128 layers, e.g. ShuffleNet skips) are dropped; the original would
  have crashed on them.
'normalized': the same information scaled for an LSTM: kind one-hot, log2 of
  kernel/stride/padding/groups, in/out channels as a fraction of the
  teacher's and as log2, a removed flag, link counts, and in/out offsets as
  multi-hots over log2 buckets (1, 2, 3-4, 5-8, ...), so no offset is capped.
"""

from __future__ import annotations

import math

import numpy as np

from esnac_jax.arch.core import KINDS, Arch

ORIGINAL_DIM = 16 + 2 * 128
OFFSET_BUCKETS = 12  # log2 buckets cover offsets up to 2**11 = 2048 layers
NORMALIZED_DIM = len(KINDS) + 4 + 4 + 1 + 2 + 2 * OFFSET_BUCKETS
FEATURE_KINDS = ('original', 'normalized')


def feature_dim(kind: str) -> int:
  if kind == 'original':
    return ORIGINAL_DIM
  if kind == 'normalized':
    return NORMALIZED_DIM
  raise ValueError(f'unknown feature kind {kind!r}; use one of {FEATURE_KINDS}')


def features(arch: Arch,
             teacher: Arch | None = None,
             kind: str = 'original',
             max_offset: int = 128) -> np.ndarray:
  """float32 array [arch.num_layers, feature_dim(kind)]."""
  if kind == 'original':
    return _original(arch, max_offset)
  if kind == 'normalized':
    return _normalized(arch, teacher or arch)
  raise ValueError(f'unknown feature kind {kind!r}; use one of {FEATURE_KINDS}')


def _base(layer) -> list[float]:
  k = layer.kind
  onehot = [0.0] * len(KINDS)
  onehot[KINDS.index(k)] = 1.0
  has_ksp = k in ('conv', 'maxpool', 'avgpool')
  ksp = [layer.kernel, layer.stride, layer.padding] if has_ksp else [0, 0, 0]
  groups = layer.groups if k in ('conv', 'shuffle') else 0
  io = ([layer.in_shape[-1], layer.out_shape[-1]]
        if k in ('conv', 'linear') else [0, 0])
  return onehot + [float(v) for v in ksp] + [float(groups)
                                            ] + [float(v) for v in io]


def _original(arch: Arch, max_offset: int) -> np.ndarray:
  n = arch.num_layers
  x = np.zeros((n, 16 + 2 * max_offset), np.float32)
  for i, layer in enumerate(arch.layers):
    x[i, :16] = _base(layer)
  for a, b in arch.edges:
    off = b - a
    if off < max_offset:
      x[b, 16 + off] = 1.0
      x[a, 16 + max_offset + off] = 1.0
  return x


def _bucket(offset: int) -> int:
  return min(OFFSET_BUCKETS - 1,
             math.ceil(math.log2(offset)) if offset > 1 else 0)


def _normalized(arch: Arch, teacher: Arch) -> np.ndarray:
  if teacher.num_layers != arch.num_layers:
    raise ValueError(f'the arch has {arch.num_layers} layers but its teacher '
                     f'{teacher.num_layers}')
  n = arch.num_layers
  x = np.zeros((n, NORMALIZED_DIM), np.float32)
  nk = len(KINDS)
  for i, (layer, t) in enumerate(zip(arch.layers, teacher.layers)):
    x[i, KINDS.index(layer.kind)] = 1.0
    if layer.kind in ('conv', 'maxpool', 'avgpool'):
      x[i, nk:nk + 3] = [
          math.log2(1 + layer.kernel),
          math.log2(1 + layer.stride),
          math.log2(1 + layer.padding)
      ]
    if layer.kind in ('conv', 'shuffle'):
      x[i, nk + 3] = math.log2(layer.groups)
    cin, cout = layer.in_shape[-1], layer.out_shape[-1]
    x[i, nk + 4:nk + 8] = [
        cin / t.in_shape[-1], cout / t.out_shape[-1],
        math.log2(cin) / 10.0,
        math.log2(cout) / 10.0
    ]
    x[i, nk + 8] = float(layer.kind == 'identity' and t.kind != 'identity')
    x[i, nk + 9] = len(arch.in_edges[i]) / 4.0
    x[i, nk + 10] = len(arch.out_edges[i]) / 4.0
  base = nk + 11
  for a, b in arch.edges:
    k = _bucket(b - a)
    x[b, base + k] = 1.0
    x[a, base + OFFSET_BUCKETS + k] = 1.0
  return x


def batch_features(archs,
                   teacher: Arch | None = None,
                   kind: str = 'original') -> np.ndarray:
  """[len(archs), layers, F] for archs of one teacher (same layer count)."""
  return np.stack([features(a, teacher, kind) for a in archs])
