"""esnac_jax.models.forward: the Flax module's network as a plain function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_variables, tiny_teacher, with_heavy_slow
from esnac_jax.arch import mutate, sample
from esnac_jax.arch.zoo import TEACHERS
from esnac_jax.models import make_model
from esnac_jax.models.forward import forward


def _networks(name):
  """The teacher, a random child and a mutation of it."""
  teacher = tiny_teacher(name)
  rng = np.random.default_rng(1)
  child = sample(teacher, rng)
  return [teacher, child, mutate(child, teacher, rng)]


def _variables(arch, seed=0):
  """Random variables with positive running variances (so the inference
  mode's outputs are numbers, not NaNs that would compare equal)."""
  v = random_variables(arch, seed)
  stats = jax.tree.map(np.abs, v['batch_stats'])
  return {'params': v['params'], 'batch_stats': stats}


def _both(arch, variables, x, train, dtype):
  model = make_model(arch, dtype)
  want = jax.jit(
      lambda v, x: model.apply(v, x, train=train, mutable=['batch_stats']))(
          variables, x)
  got = jax.jit(lambda v, x: forward(arch, v, x, train, dtype))(variables, x)
  return want, got


@pytest.mark.parametrize('name', with_heavy_slow(sorted(TEACHERS)))
@pytest.mark.parametrize('train', [False, True])
def test_equals_the_flax_module(name, train):
  for i, arch in enumerate(_networks(name)):
    variables = _variables(arch, seed=i)
    x = jax.random.normal(jax.random.key(i), (4,) + arch.input_shape)
    (logits, upd), (got, stats) = _both(arch, variables, x, train, jnp.float32)
    assert np.isfinite(logits).all()
    np.testing.assert_array_equal(got, logits)
    want_stats = upd['batch_stats'] if train else variables['batch_stats']
    assert (jax.tree.structure(stats) == jax.tree.structure(want_stats))
    jax.tree.map(np.testing.assert_array_equal, stats, want_stats)


def test_equals_the_flax_module_in_bfloat16_with_gradients():
  arch = _networks('resnet18')[1]
  variables = _variables(arch)
  x = jax.random.normal(jax.random.key(0), (4,) + arch.input_shape)
  model = make_model(arch, jnp.bfloat16)

  def flax_loss(params):
    y, upd = model.apply(
        {
            'params': params,
            'batch_stats': variables['batch_stats']
        },
        x,
        train=True,
        mutable=['batch_stats'])
    return jnp.sum(jnp.sin(y.astype(jnp.float32))), upd['batch_stats']

  def own_loss(params):
    y, stats = forward(arch, {
        'params': params,
        'batch_stats': variables['batch_stats']
    }, x, True, jnp.bfloat16)
    return jnp.sum(jnp.sin(y.astype(jnp.float32))), stats

  def grad(f):
    return jax.jit(jax.grad(f, has_aux=True))(variables['params'])

  (g0, s0), (g1, s1) = grad(flax_loss), grad(own_loss)
  jax.tree.map(np.testing.assert_array_equal, g1, g0)
  jax.tree.map(np.testing.assert_array_equal, s1, s0)


def test_refuses_inputs_of_another_shape():
  arch = tiny_teacher('resnet18')
  with pytest.raises(ValueError, match='does not match the arch input'):
    forward(arch, random_variables(arch), jnp.zeros((2, 9, 9, 1)))
