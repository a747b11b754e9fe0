"""Acquisition functions (maximisation) and batch selection."""

from __future__ import annotations

from typing import Hashable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ('ei', 'ucb', 'thompson')


def expected_improvement(mean: jax.Array, std: jax.Array,
                         best: jax.Array) -> jax.Array:
  """E[max(f - best, 0)] (the original, no exploration offset)."""
  std = jnp.maximum(std, 1e-12)
  z = (mean - best) / std
  ei = (mean -
        best) * jax.scipy.stats.norm.cdf(z) + std * jax.scipy.stats.norm.pdf(z)
  return jnp.maximum(ei, 0.0)


def upper_confidence_bound(mean: jax.Array,
                           std: jax.Array,
                           beta: float = 2.0) -> jax.Array:
  return mean + beta * std


def thompson(mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
  """One draw per candidate from its marginal posterior (independent draws:
  a joint draw over thousands of candidates would need their full
  covariance)."""
  return mean + std * jax.random.normal(key, mean.shape, mean.dtype)


def acquire(kind: str, mean, std, best, key, beta: float = 2.0) -> jax.Array:
  if kind == 'ei':
    return expected_improvement(mean, std, best)
  if kind == 'ucb':
    return upper_confidence_bound(mean, std, beta)
  if kind == 'thompson':
    return thompson(mean, std, key)
  raise ValueError(f'unknown acquisition {kind!r}; use one of {KINDS}')


def select_batch(
    scores: np.ndarray,
    ids: Sequence[Hashable] | Sequence[Sequence[Hashable]],
    exclude: Iterable[Hashable] = ()
) -> list[tuple[int, int]]:
  """One candidate per kernel, all distinct and none in `exclude`.

  scores: [K, M]. ids: M hashable candidate keys shared by all kernels, or
  [K][M] when each kernel scored its own pool. Kernel k takes its highest
  scoring candidate that no earlier kernel took; NaN scores rank below
  every number (a kernel whose scores are all NaN still picks). Returns
  (k, m) pairs; only a kernel with nothing left to choose is skipped.
  """
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 2:
    raise ValueError(f'scores must be [K, M], got shape {scores.shape}')
  k_n, m_n = scores.shape
  shared = len(ids) == m_n and not (k_n == m_n and isinstance(
      ids[0],
      (list, tuple)) and len(ids[0]) == m_n and not isinstance(ids[0], str))
  if not shared and (len(ids) != k_n or any(len(r) != m_n for r in ids)):
    raise ValueError(f'ids must hold M={m_n} keys, or K={k_n} rows of M '
                     f'keys, for scores of shape {scores.shape}; got '
                     f'{len(ids)} entries')
  ranked = np.where(np.isnan(scores), -np.inf, scores)
  taken = set(exclude)
  out = []
  for k in range(k_n):
    row_ids = ids if shared else ids[k]
    # Stable: among equal scores (e.g. several -inf) the lower index first.
    for m in np.lexsort((np.isnan(scores[k]), -ranked[k])):
      if row_ids[m] not in taken:
        taken.add(row_ids[m])
        out.append((k, int(m)))
        break
  return out
