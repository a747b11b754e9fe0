"""Weight inheritance: teacher variables -> a compressed child's variables.

Each channel atom of the teacher (see arch/widths.py) keeps `w` of its
channels, where `w` is the child's width at the layer that produces it:
the first `w` (the original's slicing) or the `w` with the largest L1 norm
of the producing weights. Every parameter of the child is the teacher's
parameter indexed by the kept channels of its input and output spaces, so
layers that read the same channels pick the same ones. Grouped (non
depthwise) convs keep the first input slices, as the original did.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from esnac_jax.arch.core import Arch
from esnac_jax.arch.operators import check_child
from esnac_jax.arch.widths import INPUT_ATOM, Space, analyse, is_depthwise
from esnac_jax.models.network import layer_name

CHANNEL_SELECT = ('first', 'l1')
BN_STATS = ('reset', 'inherit')


def kept_channels(teacher: Arch,
                  child: Arch,
                  teacher_params: dict,
                  select: str = 'first') -> dict[int, np.ndarray]:
  """Teacher atom -> sorted indices of the channels the child keeps."""
  if select not in CHANNEL_SELECT:
    raise ValueError(f'unknown channel selection {select!r}; use one of '
                     f'{CHANNEL_SELECT}')
  sa = analyse(teacher)
  kept: dict[int, np.ndarray] = {}
  for r in sa.roots:
    t_width = sa.width[r]
    if r == INPUT_ATOM:
      kept[r] = np.arange(t_width)
      continue
    members = [a for a, root in sa.root_of.items() if root == r and a >= 0]
    w = child.layers[min(members)].out_shape[-1]
    if select == 'first' or w == t_width:
      kept[r] = np.arange(w)
      continue
    score = np.zeros(t_width, np.float64)
    for a in members:
      p = teacher_params.get(layer_name(a))
      if p is not None and 'kernel' in p:
        k = np.abs(np.asarray(p['kernel'], np.float64))
        score += k.reshape(-1, k.shape[-1]).sum(0)
    kept[r] = np.sort(np.argsort(-score, kind='stable')[:w])
  return kept


def _space_index(space: Space, kept: dict[int, np.ndarray],
                 widths: dict[int, int]) -> np.ndarray:
  total = sum(widths[a] for a in space.atoms)
  parts, off = [], 0
  for a in space.atoms:
    parts.append(off + kept[a])
    off += widths[a]
  one = np.concatenate(parts)
  return np.concatenate([pos * total + one for pos in range(space.hw)])


def inherit(teacher: Arch,
            child: Arch,
            teacher_vars: dict,
            select: str = 'first',
            bn_stats: str = 'reset') -> dict[str, Any]:
  """Variables for `child` ({'params', 'batch_stats'}) from the teacher's.

  bn_stats: 'reset' gives every child BN mean 0 and variance 1 (the
  original); 'inherit' copies the teacher's running statistics.
  Raises ValueError if `child` is not a child of `teacher`.
  """
  if bn_stats not in BN_STATS:
    raise ValueError(f'unknown bn_stats {bn_stats!r}; use one of {BN_STATS}')
  check_child(child, teacher)
  tp = teacher_vars['params']
  ts = teacher_vars.get('batch_stats', {})
  sa = analyse(teacher)
  kept = kept_channels(teacher, child, tp, select)
  params: dict[str, Any] = {}
  stats: dict[str, Any] = {}
  for i, (c, t) in enumerate(zip(child.layers, teacher.layers)):
    name = layer_name(i)
    if c.kind != t.kind or c.kind not in ('conv', 'bn', 'linear'):
      continue
    if name not in tp:
      raise ValueError(f'teacher variables lack {name} ({t.name}); were they '
                       'made for this teacher?')
    out_idx = _space_index(sa.out_spaces[i], kept, sa.width)
    in_idx = _space_index(sa.in_spaces[i], kept, sa.width)
    p = {k: np.asarray(v) for k, v in tp[name].items()}
    if c.kind == 'bn':
      params[name] = {'scale': p['scale'][out_idx], 'bias': p['bias'][out_idx]}
      if bn_stats == 'inherit':
        s = ts[name]
        stats[name] = {
            'mean': np.asarray(s['mean'])[out_idx],
            'var': np.asarray(s['var'])[out_idx]
        }
      else:
        n = len(out_idx)
        stats[name] = {
            'mean': np.zeros(n, np.float32),
            'var': np.ones(n, np.float32)
        }
      continue
    k = p['kernel'][..., out_idx]
    if c.kind == 'linear':
      k = k[in_idx]
    elif is_depthwise(t):
      pass  # one input channel per group: only outputs are selected
    elif t.groups == 1:
      k = k[:, :, in_idx, :]
    else:
      k = k[:, :, :c.in_channels // c.groups, :]
    entry = {'kernel': k}
    if 'bias' in p:
      entry['bias'] = p['bias'][out_idx]
    params[name] = entry
  return {'params': params, 'batch_stats': stats}
