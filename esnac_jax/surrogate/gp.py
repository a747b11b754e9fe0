"""Gaussian process on embeddings: RBF kernel, likelihoods, posterior.

All functions take a point mask, so histories padded to a fixed size give
exactly the result of the unpadded history: a masked point has a unit
diagonal, no covariance with anything and a zero residual.

The kernel is k(a, b) = signal * exp(-|a - b|^2 / (2 * ls2)); the original's
alpha is ls2 (0.01) and its beta is the noise (0.05).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

LOG_2PI = 1.8378770664093453
JITTERS = (0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class Hypers(NamedTuple):
  """GP hyperparameters (positive values, not logs)."""
  ls2: jax.Array  # squared lengthscale (the original's alpha)
  noise: jax.Array  # observation noise variance (the original's beta)
  signal: jax.Array  # signal variance (1 in the original)
  mean: jax.Array  # constant prior mean (0 in the original)


def rbf(a: jax.Array, b: jax.Array, ls2, signal) -> jax.Array:
  """[N, D] x [M, D] -> [N, M] RBF kernel."""
  d2 = (jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] -
        2.0 * a @ b.T)
  return signal * jnp.exp(-jnp.maximum(d2, 0.0) / (2.0 * ls2))


def safe_cholesky(a: jax.Array) -> jax.Array:
  """Cholesky of a symmetric PSD matrix, adding jitter until it is finite.

  The jitter is chosen without gradients (it is a numerical guard); the
  factorisation that is returned is differentiable.
  """
  n = a.shape[-1]
  eye = jnp.eye(n, dtype=a.dtype)
  scale = jnp.maximum(jnp.mean(jnp.diag(a)), 1e-12)
  jit = jnp.asarray(JITTERS, a.dtype) * jax.lax.stop_gradient(scale)
  a0 = jax.lax.stop_gradient(a)

  def bad(i):
    l = jnp.linalg.cholesky(a0 + jit[i] * eye)
    return ~jnp.all(jnp.isfinite(l))

  i = jax.lax.while_loop(lambda i: (i < len(JITTERS) - 1) & bad(i),
                         lambda i: i + 1, 0)
  return jnp.linalg.cholesky(a + jit[i] * eye)


def _system(e: jax.Array, y: jax.Array, mask: jax.Array, h: Hypers):
  m = mask.astype(e.dtype)
  k = rbf(e, e, h.ls2, h.signal) + h.noise * jnp.eye(len(e), dtype=e.dtype)
  k = k * m[:, None] * m[None, :] + jnp.diag(1.0 - m)
  r = (y - h.mean) * m
  return safe_cholesky(k), r, m


def log_marginal_likelihood(e: jax.Array, y: jax.Array, mask: jax.Array,
                            h: Hypers) -> jax.Array:
  """log p(y | embeddings) of the valid points."""
  l, r, m = _system(e, y, mask, h)
  a = jsl.cho_solve((l, True), r)
  return (-0.5 * r @ a - jnp.sum(jnp.log(jnp.diag(l))) -
          0.5 * jnp.sum(m) * LOG_2PI)


def loo_terms(e: jax.Array, y: jax.Array, mask: jax.Array, h: Hypers):
  """Leave-one-out predictive mean and variance of every point, closed form.

  With K_y = K + noise I: var_i = 1 / [K_y^-1]_ii and
  mu_i = y_i - [K_y^-1 (y - mean)]_i / [K_y^-1]_ii (one factorisation
  instead of the original's n inverses).
  """
  l, r, _ = _system(e, y, mask, h)
  # diag(K_y^-1) = column sums of L^-1 squared. (A batched multi-column
  # cho_solve here deadlocked XLA:CPU under vmap at K=8, n=96.)
  linv = jsl.solve_triangular(l, jnp.eye(len(e), dtype=e.dtype), lower=True)
  d = jnp.sum(linv * linv, axis=0)
  return y - jsl.cho_solve((l, True), r) / d, 1.0 / d


def loo_log_likelihood(e: jax.Array, y: jax.Array, mask: jax.Array,
                       h: Hypers) -> jax.Array:
  """Mean leave-one-out predictive log-likelihood (the original's objective)."""
  mu, var = loo_terms(e, y, mask, h)
  m = mask.astype(e.dtype)
  ll = -0.5 * (LOG_2PI + jnp.log(var) + (y - mu)**2 / var)
  return jnp.sum(ll * m) / jnp.maximum(jnp.sum(m), 1.0)


def posterior(e: jax.Array,
              y: jax.Array,
              mask: jax.Array,
              h: Hypers,
              e_new: jax.Array,
              include_noise: bool = True):
  """Predictive mean and variance at e_new [M, D].

  include_noise adds the noise variance, as the original does (the variance
  of a noisy observation).
  """
  l, r, m = _system(e, y, mask, h)
  a = jsl.cho_solve((l, True), r)
  ks = rbf(e_new, e, h.ls2, h.signal) * m[None, :]
  mean = h.mean + ks @ a
  v = jsl.solve_triangular(l, ks.T, lower=True)
  var = h.signal - jnp.sum(v * v, 0)
  if include_noise:
    var = var + h.noise
  return mean, jnp.maximum(var, 1e-12)
