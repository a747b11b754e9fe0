"""esnac_jax.models.batchnorm: Flax's BatchNorm, with a closed-form backward."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esnac_jax.models.batchnorm import BatchNorm, normalise


def _pair(dtype):
  kw = dict(momentum=0.9, epsilon=1e-5, dtype=dtype)
  return (nn.BatchNorm(use_running_average=False,
                       **kw), BatchNorm(use_running_average=False, **kw))


def _perturbed(variables):
  """Variables away from their init (scale 1, bias 0, stats 0 and 1)."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  return jax.tree.unflatten(
      tree, [a + jax.random.uniform(k, a.shape) for a, k in zip(leaves, keys)])


def _train_apply(model, variables, x, weights):
  """Output, updated stats and gradients (params, input) of a nonlinear
  function of the output, in training mode."""

  def objective(params, x):
    y, upd = model.apply(
        {
            'params': params,
            'batch_stats': variables['batch_stats']
        },
        x,
        mutable=['batch_stats'])
    return jnp.sum(jnp.sin(y.astype(jnp.float32)) * weights), (y, upd)

  (_, (y, upd)), grads = jax.value_and_grad(objective,
                                            argnums=(0, 1),
                                            has_aux=True)(variables['params'],
                                                          x)
  return y, upd['batch_stats'], grads


@pytest.mark.parametrize('shape', [(16, 4, 4, 8), (32, 6)])
def test_matches_flax_batchnorm_in_training(shape):
  ref, new = _pair(jnp.float32)
  x = jax.random.normal(jax.random.key(1), shape) * 3 + 1
  variables = ref.init(jax.random.key(0), x)
  assert (jax.tree.structure(new.init(jax.random.key(0),
                                      x)) == jax.tree.structure(variables))
  variables = _perturbed(variables)
  weights = jax.random.normal(jax.random.key(2), shape)
  y0, stats0, (gp0, gx0) = _train_apply(ref, variables, x, weights)
  y1, stats1, (gp1, gx1) = _train_apply(new, variables, x, weights)
  np.testing.assert_array_equal(y1, y0)
  jax.tree.map(np.testing.assert_array_equal, stats1, stats0)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), gp1,
      gp0)
  np.testing.assert_allclose(gx1, gx0, rtol=1e-5, atol=1e-5)


def test_matches_flax_batchnorm_in_bfloat16_and_inference():
  ref, new = _pair(jnp.bfloat16)
  x = (jax.random.normal(jax.random.key(1),
                         (16, 4, 4, 8)) * 3 + 1).astype(jnp.bfloat16)
  variables = _perturbed(ref.init(jax.random.key(0), x))
  weights = jax.random.normal(jax.random.key(2), x.shape)
  y0, stats0, (gp0, gx0) = _train_apply(ref, variables, x, weights)
  y1, stats1, (gp1, gx1) = _train_apply(new, variables, x, weights)
  assert y1.dtype == y0.dtype == gx1.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.float32(y1), np.float32(y0))
  jax.tree.map(np.testing.assert_array_equal, stats1, stats0)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), gp1,
      gp0)
  # One bfloat16 step (2^-7 relative) apart at most.
  np.testing.assert_allclose(np.float32(gx1),
                             np.float32(gx0),
                             rtol=2**-7,
                             atol=2**-7)

  def infer(m):
    return m.clone(use_running_average=True).apply(variables, x)

  np.testing.assert_array_equal(np.float32(infer(new)), np.float32(infer(ref)))


def test_gradients_through_the_statistics_match_autodiff():
  """mean and var are outputs too; a loss on them differentiates right."""
  x = jax.random.normal(jax.random.key(0), (8, 3, 3, 5))
  scale = jnp.linspace(0.5, 2.0, 5)
  bias = jnp.linspace(-1.0, 1.0, 5)

  def plain(x, scale, bias):
    mean = jnp.mean(x, (0, 1, 2))
    var = jnp.maximum(0.0, jnp.mean(x * x, (0, 1, 2)) - mean * mean)
    y = (x - mean) * (jax.lax.rsqrt(var + 1e-3) * scale) + bias
    return y, mean, var

  def loss(fn):
    return lambda *a: sum(
        jnp.sum(jnp.cos(o) * (i + 1)) for i, o in enumerate(fn(*a)))

  want = jax.grad(loss(plain), argnums=(0, 1, 2))(x, scale, bias)
  got = jax.grad(loss(lambda *a: normalise(*a, 1e-3)),
                 argnums=(0, 1, 2))(x, scale, bias)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_initialising_leaves_the_running_statistics_alone():
  x = jnp.full((4, 2, 2, 3), 7.0)
  _, new = _pair(jnp.float32)
  stats = new.init(jax.random.key(0), x)['batch_stats']
  np.testing.assert_array_equal(stats['mean'], np.zeros(3))
  np.testing.assert_array_equal(stats['var'], np.ones(3))
