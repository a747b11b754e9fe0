"""Accuracy against size as two objectives: the Pareto front, its
hypervolume, and the expected hypervolume improvement (EHVI) that grows it.

Sizes are fractions of the teacher's (parameters or FLOPs), accuracies
validation accuracies; the hypervolume is the area the front dominates
inside the reference box [0, ref_size] x [ref_acc, 1], ref_size = 1 (the
teacher's size) and ref_acc = 0. A child's size is known exactly from its
encoding, so only its accuracy is uncertain: with a Gaussian posterior
N(mean, std^2) the EHVI of a candidate of size s is exact and cheap,

  EHVI = sum_i w_i(s) * EI(mean, std, a_i),

where the front's step function takes level a_i on [s_i, s_(i+1)) (level
ref_acc left of the smallest member) and w_i(s) is the length of that
step to the right of s. A batch spreads along the front by adding each
pick at its predicted mean before the next is chosen (kriging believer).
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable, Sequence

import numpy as np


def front(sizes: Sequence[float], accs: Sequence[float]) -> list[int]:
  """Indices of the points no other point beats on both smaller size and
  higher accuracy (the first of equal points), smallest first."""
  order = sorted(range(len(sizes)), key=lambda i: (sizes[i], -accs[i], i))
  out, best = [], -np.inf
  for i in order:
    if accs[i] > best:
      out.append(i)
      best = accs[i]
  return out


def _steps(sizes, accs, ref_size: float, ref_acc: float):
  """The front's step edges [F + 2] and levels [F + 1] inside the box."""
  idx = [
      i for i in front(sizes, accs) if sizes[i] < ref_size and accs[i] > ref_acc
  ]
  s = np.array([0.0] + [sizes[i] for i in idx] + [ref_size])
  a = np.array([ref_acc] + [accs[i] for i in idx])
  return s, a


def hypervolume(sizes: Sequence[float],
                accs: Sequence[float],
                ref_size: float = 1.0,
                ref_acc: float = 0.0) -> float:
  """The area of the box the points dominate (0 for no points)."""
  s, a = _steps(sizes, accs, ref_size, ref_acc)
  return float(np.sum(np.diff(s[1:]) * (a[1:] - ref_acc)))


def ehvi(mean: np.ndarray,
         std: np.ndarray,
         size: np.ndarray,
         front_sizes: Sequence[float],
         front_accs: Sequence[float],
         ref_size: float = 1.0,
         ref_acc: float = 0.0) -> np.ndarray:
  """Expected hypervolume improvement [M] of M candidates of known `size`
  whose accuracy is N(mean, std^2), over the points given."""
  mean, std, size = (np.asarray(v, np.float64) for v in (mean, std, size))
  s, a = _steps(list(front_sizes), list(front_accs), ref_size, ref_acc)
  left = np.maximum(size[:, None], s[None, :-1])
  w = np.maximum(np.minimum(s[None, 1:], ref_size) - left, 0.0)  # [M, F+1]
  return np.sum(w * _expected_improvement(mean[:, None], std[:, None], a),
                axis=1)


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _expected_improvement(mean: np.ndarray, std: np.ndarray,
                          best: np.ndarray) -> np.ndarray:
  """E[max(f - best, 0)] for f ~ N(mean, std^2), in NumPy: the front's
  size changes with every pick, and eager JAX would compile each shape."""
  std = np.maximum(std, 1e-12)
  z = (mean - best) / std
  cdf = 0.5 * _ERFC(-z / math.sqrt(2)).astype(np.float64)
  pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
  return np.maximum((mean - best) * cdf + std * pdf, 0.0)


def select_batch(mean: np.ndarray,
                 std: np.ndarray,
                 sizes: np.ndarray,
                 ids: Sequence[Hashable] | Sequence[Sequence[Hashable]],
                 front_sizes: Sequence[float],
                 front_accs: Sequence[float],
                 exclude: Iterable[Hashable] = (),
                 ref_size: float = 1.0) -> list[tuple[int, int]]:
  """One candidate per kernel by EHVI, distinct and none in `exclude`.

  mean, std: [K, M] each kernel's posterior; sizes: [M] shared by every
  kernel's pool or [K, M] (a pool per kernel, then ids is [K][M]). Kernel k
  takes its highest-EHVI candidate no earlier kernel took, over the points
  given plus the earlier picks at their predicted means. Returns (k, m).
  """
  mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
  sizes = np.asarray(sizes, np.float64)
  if mean.ndim != 2 or std.shape != mean.shape:
    raise ValueError(f'mean and std must both be [K, M], got {mean.shape} '
                     f'and {std.shape}')
  per_kernel = sizes.ndim == 2
  if sizes.shape[-1] != mean.shape[1] or (per_kernel and
                                          sizes.shape != mean.shape):
    raise ValueError(f'sizes of shape {sizes.shape} do not match the '
                     f'posteriors {mean.shape}')
  fs, fa = list(front_sizes), list(front_accs)
  taken = set(exclude)
  out = []
  for k in range(mean.shape[0]):
    row_ids = ids[k] if per_kernel else ids
    size = sizes[k] if per_kernel else sizes
    score = ehvi(mean[k], std[k], size, fs, fa, ref_size)
    score = np.where(np.isfinite(score), score, -np.inf)
    for m in np.argsort(-score, kind='stable'):
      if row_ids[m] not in taken:
        taken.add(row_ids[m])
        out.append((k, int(m)))
        fs.append(float(size[m]))
        fa.append(float(mean[k, m]))
        break
  return out


def spread(sizes: Sequence[float], accs: Sequence[float], k: int) -> list[int]:
  """At most k members of the front, evenly spaced along it (by rank),
  always with its smallest and most accurate ends."""
  f = front(sizes, accs)
  if len(f) <= k:
    return f
  if k == 1:
    return [f[-1]]
  at = np.round(np.linspace(0, len(f) - 1, k)).astype(int)
  return [f[i] for i in dict.fromkeys(at.tolist())]
