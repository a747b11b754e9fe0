"""Weight inheritance from the teacher."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_variables, tiny_teacher
from esnac_jax.arch import (get_teacher, remove_layers, removable_layers,
                            sample, shrink, width_groups)
from esnac_jax.models import inherit, make_model


def _shapes(tree):
  return jax.tree_util.tree_map(lambda x: tuple(x.shape), tree)


@pytest.fixture(scope='module')
def resnet():
  t = tiny_teacher('resnet18')
  return t, random_variables(t)


def test_shapes_match_fresh_init(teacher_name):
  t = tiny_teacher(teacher_name)
  tv = random_variables(t)
  rng = np.random.default_rng(1)
  for select in ('first', 'l1'):
    c = sample(t, rng)
    cv = inherit(t, c, tv, select)
    ref = jax.eval_shape(
        make_model(c).init, jax.random.key(0), jnp.zeros((1,) + c.input_shape))
    assert _shapes(cv) == _shapes(ref)


def test_uncompressed_child_is_the_teacher(resnet):
  t, tv = resnet
  x = jax.random.normal(jax.random.key(1), (4,) + t.input_shape)
  # Make BN statistics non-trivial so 'inherit' vs 'reset' matters.
  _, upd = make_model(t).apply(tv, x, train=True, mutable=['batch_stats'])
  tv = {'params': tv['params'], 'batch_stats': upd['batch_stats']}
  y = make_model(t).apply(tv, x)
  same = inherit(t, t, tv, 'l1', 'inherit')
  np.testing.assert_allclose(make_model(t).apply(same, x), y, rtol=1e-6)
  reset = inherit(t, t, tv, 'first', 'reset')
  for s in reset['batch_stats'].values():
    assert (s['mean'] == 0).all() and (s['var'] == 1).all()


def test_first_k_is_the_original_slicing(resnet):
  t, tv = resnet
  g = width_groups(t, t)[1]  # the 16-wide stage
  c = shrink(t, t, [(g, 5)])
  cv = inherit(t, c, tv, 'first')
  for name, p in cv['params'].items():
    if 'kernel' not in p:
      continue
    tk = np.asarray(tv['params'][name]['kernel'])
    k = p['kernel']
    np.testing.assert_array_equal(k, tk[tuple(slice(0, n) for n in k.shape)])


def test_l1_keeps_the_largest_filters(resnet):
  t, tv = resnet
  params = jax.tree_util.tree_map(np.array, tv['params'])
  stem = params['layer000']['kernel']  # produces the stage-1 stream
  stem[..., 3] *= 100.0  # make channel 3 the most important
  g = [g for g in width_groups(t, t) if 0 in g.atoms][0]
  c = shrink(t, t, [(g, 2)])
  tv2 = {'params': params, 'batch_stats': tv['batch_stats']}
  cv = inherit(t, c, tv2, 'l1')
  first = inherit(t, c, tv2, 'first')
  kept = cv['params']['layer000']['kernel']
  assert any(np.array_equal(kept[..., k], stem[..., 3]) for k in range(2))
  np.testing.assert_array_equal(first['params']['layer000']['kernel'],
                                stem[..., :2])


def test_removed_layers_have_no_params(resnet):
  t, tv = resnet
  i = [k for k in removable_layers(t) if t.layers[k].kind == 'conv'][0]
  c = remove_layers(t, t, [i])
  cv = inherit(t, c, tv)
  assert f'layer{i:03d}' not in cv['params']


def test_bad_inputs(resnet):
  t, tv = resnet
  with pytest.raises(ValueError, match='children keep every layer'):
    inherit(t, get_teacher('resnet34'), tv)
  with pytest.raises(ValueError, match="unknown channel selection 'random'"):
    inherit(t, t, tv, 'random')
  with pytest.raises(ValueError, match="unknown bn_stats 'keep'"):
    inherit(t, t, tv, bn_stats='keep')
  with pytest.raises(ValueError, match='teacher variables lack layer000'):
    inherit(t, t, {'params': {}, 'batch_stats': {}})
