"""Batch normalisation with a hand-written backward pass.

Same variables, arithmetic and running averages as `flax.linen.BatchNorm`
(channels last, statistics in float32, E[x^2] - E[x]^2 variance clipped at
0, biased variance in the running average), so variables move freely
between the two. What differs is the gradient: the textbook closed form,
two reductions and one elementwise pass, where autodiff through Flax's
statistics leaves XLA several more kernels per layer. Every student of a
search compiles its own program, and on a CPU those kernels are most of its
compile time and a good part of each small step (docs/benchmarks.md,
"Batch norm backward").
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  var = jnp.maximum(0.0, jnp.mean(x * x, axes) - mean * mean)
  return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def normalise(x: jax.Array, scale: jax.Array, bias: jax.Array,
              epsilon: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(y, mean, var) of float32 `x` over every axis but the last, where
  y = (x - mean) * rsqrt(var + epsilon) * scale + bias."""
  return _normalise_fwd(x, scale, bias, epsilon)[0]


def _normalise_fwd(x, scale, bias, epsilon):
  mean, var = _stats(x)
  inv = jax.lax.rsqrt(var + epsilon)
  y = (x - mean) * (inv * scale) + bias
  return (y, mean, var), (x, mean, inv, scale)


def _normalise_bwd(epsilon, res, cotangents):
  del epsilon
  x, mean, inv, scale = res
  gy, gmean, gvar = cotangents
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  xhat = (x - mean) * inv
  gbias = jnp.sum(gy, axes)
  gscale = jnp.sum(gy * xhat, axes)
  gx = (scale * inv / n) * (n * gy - gbias - xhat * gscale)
  # The statistics are outputs too (for the running averages); their own
  # cotangents are zero there, and XLA folds these terms away.
  gx = gx + gmean / n + (2.0 / n) * gvar * (x - mean)
  return gx, gscale, gbias


normalise.defvjp(_normalise_fwd, _normalise_bwd)


class BatchNorm(nn.Module):
  """Drop-in for the `flax.linen.BatchNorm` arguments this package uses
  (channels last, scale and bias, no cross-device axis)."""
  use_running_average: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros(
        (c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones(
        (c,), jnp.float32))
    scale = self.param('scale', nn.initializers.ones, (c,), self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros, (c,), self.param_dtype)
    dtype = self.dtype or jnp.result_type(x, scale, bias)
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if self.use_running_average:
      mul = jax.lax.rsqrt(ra_var.value + self.epsilon) * scale
      return ((x32 - ra_mean.value) * mul + bias).astype(dtype)
    y, mean, var = normalise(x32, scale.astype(x32.dtype),
                             bias.astype(x32.dtype), self.epsilon)
    if not self.is_initializing():
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * jax.lax.stop_gradient(mean)
      ra_var.value = m * ra_var.value + (1 - m) * jax.lax.stop_gradient(var)
    return y.astype(dtype)
