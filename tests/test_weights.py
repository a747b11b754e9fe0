"""models.weights.map_variables: a Flax model of one's own onto the Arch's
layer names, by order or by a name map; the same logits after."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esnac_jax.arch import INPUT, ArchBuilder
from esnac_jax.models import make_model
from esnac_jax.models.weights import WeightsError, map_variables


class MyNet(nn.Module):
  """A user's network, written in Flax without esnac_jax."""

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Conv(8, (3, 3), padding=1, use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
    h = nn.Conv(8, (3, 3), padding=1, use_bias=False)(x)
    h = nn.BatchNorm(use_running_average=not train)(h)
    x = nn.relu(x + h)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(5)(x)


def my_arch():
  b = ArchBuilder((8, 8, 3), 'mynet')
  x = b.relu(b.bn(b.conv(INPUT, 8, 3, padding=1, name='stem'), name='bn0'))
  h = b.bn(b.conv(x, 8, 3, padding=1, name='conv'), name='bn1')
  x = b.relu([x, h], name='sum')
  x = b.flatten(b.avgpool(x, 8, 1, name='pool'))
  b.linear(x, 5, name='fc')
  return b.build()


def _trained_like(v, seed=0):
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: (a + rng.uniform(0.1, 0.5, a.shape)).astype(a.dtype), v)


def test_by_order_and_by_names_give_the_users_logits():
  x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype('f4')
  mine = _trained_like(MyNet().init(jax.random.key(0), x))
  want = MyNet().apply(mine, x)
  arch = my_arch()
  for names in (None, {
      'fc': 'Dense_0',
      'bn1': 'BatchNorm_1',
      'stem': 'Conv_0',
      'bn0': 'BatchNorm_0',
      'conv': 'Conv_1'
  }):
    v = map_variables(arch, mine, names)
    got = make_model(arch).apply(v, x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mismatches_name_both_sides():
  x = np.zeros((1, 8, 8, 3), np.float32)
  mine = MyNet().init(jax.random.key(0), x)
  arch = my_arch()
  with pytest.raises(WeightsError, match='has no module'):
    map_variables(
        arch, mine, {
            'stem': 'Conv_9',
            'bn0': 'BatchNorm_0',
            'conv': 'Conv_1',
            'bn1': 'BatchNorm_1',
            'fc': 'Dense_0'
        })
  with pytest.raises(WeightsError, match='leaves layer003 of the teacher'):
    map_variables(arch, mine, {'stem': 'Conv_0', 'bn0': 'BatchNorm_0'})
  with pytest.raises(WeightsError, match="'nope', which is not a conv"):
    map_variables(arch, mine, {'nope': 'Conv_0'})
  swapped = {
      'stem': 'BatchNorm_0',
      'bn0': 'Conv_0',
      'conv': 'Conv_1',
      'bn1': 'BatchNorm_1',
      'fc': 'Dense_0'
  }
  with pytest.raises(WeightsError, match='Conv_0 has no batch_stats'):
    map_variables(arch, mine, swapped)
  small = dict(mine,
               params={
                   k: v for k, v in mine['params'].items() if k != 'Dense_0'
               })
  with pytest.raises(WeightsError, match='has 0 linear modules'):
    map_variables(arch, small)
