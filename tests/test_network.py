"""Arch -> Flax module: parameter counts, shapes, forward passes.

The Flax half of the property test: for every (tiny) teacher,
ESNAC_FLAX_N random children and as many mutations are traced through the
module (exact parameter tree and output shape), and a few are run for real.
Tracing costs 0.15-0.45 s per network on this CPU; set ESNAC_FLAX_N=500 for
the full property run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import env_int, tiny_teacher
from esnac_jax.arch import get_teacher, mutate, sample
from esnac_jax.models import count_params, init_variables, make_model
from esnac_jax.models.network import channel_shuffle

N = env_int('ESNAC_FLAX_N', 4)
RUN = env_int('ESNAC_FLAX_RUN', 1)


def _abstract(arch):
  x = jnp.zeros((2,) + arch.input_shape)
  model = make_model(arch)
  v = jax.eval_shape(model.init, jax.random.key(0), x)
  y = jax.eval_shape(model.apply, v, x)
  return v, y


@pytest.mark.parametrize('name,classes', [('vgg19', 100), ('resnet18', 10),
                                          ('shufflenet', 100)])
def test_full_teacher_param_count(name, classes):
  t = get_teacher(name, num_classes=classes)
  v, y = _abstract(t)
  assert count_params(v['params']) == t.num_params
  assert y.shape == (2, classes)


def test_children_build_and_run(teacher_name):
  t = tiny_teacher(teacher_name)
  rng = np.random.default_rng(0)
  archs = []
  for _ in range(N):
    c = sample(t, rng)
    archs += [c, mutate(c, t, rng)]
  for a in archs:
    v, y = _abstract(a)
    assert count_params(v['params']) == a.num_params
    assert y.shape == (2, 10)
  for a in archs[:RUN]:
    x = jax.random.normal(jax.random.key(1), (2,) + a.input_shape)
    variables = init_variables(a, jax.random.key(0))
    out, upd = make_model(a).apply(variables,
                                   x,
                                   train=True,
                                   mutable=['batch_stats'])
    assert out.shape == (2, 10) and bool(jnp.isfinite(out).all())


def test_wrong_input_shape_is_a_clear_error():
  t = tiny_teacher('resnet18')
  with pytest.raises(ValueError,
                     match=r'does not match the arch input '
                     r'\(8, 8, 3\)'):
    make_model(t).init(jax.random.key(0), jnp.zeros((1, 9, 9, 3)))
  with pytest.raises(TypeError, match='needs an Arch'):
    make_model('resnet18')


def test_channel_shuffle_matches_original():
  # PyTorch: view(N, g, C/g, H, W).permute(0, 2, 1, 3, 4): channel order.
  x = jnp.arange(6.0).reshape(1, 1, 1, 6)
  np.testing.assert_array_equal(
      channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])
