"""Children as arrays (arch.encoding) against the per-Arch operators.

The array path must give exactly what building each child as an Arch gives
(features of both kinds, parameters, FLOPs, keys, the encode/decode round
trip) for random children of every zoo teacher and a builder teacher, and
draw children with the same law as `operators.sample`.
"""

import numpy as np
import pytest
from scipy import stats

from esnac_jax.arch import (SamplerConfig, batch_features, check_child,
                            features, get_teacher, sample)
from esnac_jax.arch.encoding import Encoder, Unsupported, _bernoulli_hits, encoder
from esnac_jax.arch.widths import width_groups
from esnac_jax.bench.teachers import vgg_chain
from esnac_jax.search import Constraints, RandomSearcher

SUPPORTED = ('vgg19', 'resnet18', 'resnet34', 'shufflenet', 'mobilenetv2')


def _teacher(name):
  if name == 'vgg_chain':
    return vgg_chain(16, 3, 10)
  return get_teacher(name, input_size=32, num_classes=10, width=0.25)


@pytest.mark.parametrize('mode', ['by_width', 'fine'])
@pytest.mark.parametrize('name', SUPPORTED + ('vgg_chain',))
def test_array_path_equals_the_arch_path(name, mode):
  t = _teacher(name)
  enc = Encoder(t, mode)
  # Large skip probabilities so that skips, and their ties, are exercised.
  cfg = SamplerConfig(group_mode=mode, skip_probs=(0.05, 0.3))
  pool = enc.sample(np.random.default_rng(3), 24, cfg)
  assert pool.skips.any() and pool.removed.any()
  orig, norm = enc.features(pool, 'original'), enc.features(pool, 'normalized')
  params, flops, keys = enc.num_params(pool), enc.flops(pool), enc.keys(pool)
  back = enc.encode([enc.decode(pool, k) for k in range(len(pool))])
  for k in range(len(pool)):
    a = enc.decode(pool, k)
    check_child(a, t)
    width_groups(a, t, mode)  # the operators' own analysis accepts it
    np.testing.assert_array_equal(orig[k], features(a, t, 'original'))
    np.testing.assert_allclose(norm[k], features(a, t, 'normalized'), rtol=1e-6)
    assert (params[k], flops[k]) == (a.num_params, a.flops)
    assert keys[k] == enc.arch_key(a)
  for f in ('removed', 'widths', 'skips'):
    np.testing.assert_array_equal(getattr(back, f), getattr(pool, f))
  assert len(set(keys)) == len({enc.decode(pool, k) for k in range(len(pool))})


def test_the_operators_children_encode_and_round_trip():
  t = _teacher('resnet18')
  enc = Encoder(t)
  rng = np.random.default_rng(0)
  archs = [sample(t, rng) for _ in range(20)]
  rows = enc.encode(archs)
  for k, a in enumerate(archs):
    assert enc.decode(rows, k) == a
  np.testing.assert_array_equal(enc.features(rows, 'original'),
                                batch_features(archs, t, 'original'))


def test_unsupported_teachers_fall_back_to_the_arch_path(monkeypatch):
  t = _teacher('shufflenet')

  def refuse(self, teacher, mode='by_width'):
    raise Unsupported('a structure the encoding does not cover')

  monkeypatch.setattr(Encoder, '__init__', refuse)
  encoder.cache_clear()
  try:
    assert encoder(t) is None
    s = RandomSearcher(t, SamplerConfig(), seed=0)
    archs = s.ask(3)
  finally:
    encoder.cache_clear()
  assert s.encoder is None and len(set(archs)) == 3
  for a in archs:
    check_child(a, t)


def _summary(teacher, archs):
  removed = [sum(l.kind == 'identity' for l in a.layers) for a in archs]
  skips = [len(a.edges) - len(teacher.edges) for a in archs]
  ratio = [a.num_params / teacher.num_params for a in archs]
  return np.array(removed), np.array(skips), np.array(ratio)


@pytest.mark.parametrize('mode', ['by_width', 'fine'])
@pytest.mark.parametrize('name', ['resnet18', 'shufflenet'])
def test_the_sampler_draws_with_the_operators_law(name, mode):
  """Two-sample KS tests on removed layers, added skips and parameter
  ratios: the array sampler against operators.sample (fixed seeds)."""
  t = _teacher(name)
  cfg = SamplerConfig(group_mode=mode)
  enc = Encoder(t, mode)
  pool = enc.sample(np.random.default_rng(11), 3000, cfg)
  rng = np.random.default_rng(12)
  ref = _summary(t, [sample(t, rng, cfg) for _ in range(600)])
  got = (pool.removed.sum(1), pool.skips.sum(1),
         enc.num_params(pool) / t.num_params)
  for name, a, b in zip(('removed', 'skips', 'params'), got, ref):
    p = stats.ks_2samp(a, b).pvalue
    assert p > 1e-3, f'{name}: the two samplers differ (KS p={p:.2g})'
    assert abs(a.mean() - b.mean()) < 4 * b.std() / np.sqrt(len(b)) + 1e-9


def test_bernoulli_hits_have_the_right_rates():
  rng = np.random.default_rng(0)
  p = np.array([0.0, 0.01, 0.3, 1.0])
  rows, cols = _bernoulli_hits(rng, np.repeat(p, 500), 200)
  counts = np.bincount(rows, minlength=2000).reshape(4, 500)
  assert counts[0].sum() == 0 and (counts[3] == 200).all()
  for k in (1, 2):
    mean = counts[k].mean()
    assert abs(mean - 200 * p[k]) < 4 * np.sqrt(200 * p[k] * (1 - p[k]) / 500)
  # Distinct columns within a row.
  pairs = rows * 1000 + cols
  assert len(np.unique(pairs)) == len(pairs)


def test_drawn_pools_respect_constraints_and_exclusions():
  t = _teacher('resnet18')
  limit = int(t.num_params * 0.2)
  s = RandomSearcher(t,
                     SamplerConfig(),
                     seed=1,
                     constraints=Constraints(max_params=limit))
  first = s.draw(np.random.default_rng(0), 40)
  assert all(a.num_params <= limit for a in first)
  assert len(set(first)) == 40
  again = s.draw(np.random.default_rng(0), 40, exclude=set(first))
  assert not set(again) & set(first)
  cands = s.candidates(np.random.default_rng(0), 300)
  assert cands.rows is not None and len(cands) == 300
  np.testing.assert_array_equal(
      cands.features(t, 'normalized')[:5],
      batch_features([cands.arch(m) for m in range(5)], t, 'normalized'))


@pytest.mark.parametrize('mode', ['by_width', 'fine'])
@pytest.mark.parametrize('name', ['resnet18', 'mobilenetv2', 'vgg_chain'])
def test_mutations_are_one_step_valid_children(name, mode):
  t = _teacher(name)
  enc = Encoder(t, mode)
  cfg = SamplerConfig(group_mode=mode, skip_probs=(0.05, 0.3))
  rng = np.random.default_rng(5)
  parents = enc.sample(rng, 60, cfg)
  kids, changed = enc.mutate(parents, rng, cfg)
  assert changed.mean() > 0.7
  feats = enc.features(kids, 'normalized')
  pkeys, kkeys = enc.keys(parents), enc.keys(kids)
  kinds = set()
  for k in np.flatnonzero(changed):
    a = enc.decode(kids, k)
    check_child(a, t)
    width_groups(a, t, mode)
    np.testing.assert_allclose(feats[k],
                               features(a, t, 'normalized'),
                               rtol=1e-6)
    assert kkeys[k] != pkeys[k]
    d_removed = int((kids.removed[k] != parents.removed[k]).sum())
    d_skips = int((kids.skips[k] != parents.skips[k]).sum())
    d_widths = bool((kids.widths[k] != parents.widths[k]).any())
    if d_removed:
      # A removal also drops the skips that ended at the removed layer.
      assert d_removed == 1 and not d_widths
      kinds.add('remove' if kids.removed[k].sum() >
                parents.removed[k].sum() else 'restore')
    elif d_widths:
      assert d_skips == 0
      kinds.add('resize')
    else:
      assert d_skips == 1
      kinds.add('add' if kids.skips[k].sum() >
                parents.skips[k].sum() else 'drop')
  assert kinds == {'remove', 'restore', 'resize', 'add', 'drop'}
  for k in np.flatnonzero(~changed):
    assert kkeys[k] == pkeys[k]


def test_bad_inputs_are_refused_with_their_reason():
  t = _teacher('resnet18')
  with pytest.raises(ValueError, match='unknown group_mode'):
    Encoder(t, 'coarse')
  enc = Encoder(t, 'by_width')
  with pytest.raises(ValueError, match="groups widths 'by_width'"):
    enc.sample(np.random.default_rng(0), 4, SamplerConfig(group_mode='fine'))
  other = _teacher('vgg_chain')
  with pytest.raises(ValueError, match='layers, its teacher'):
    enc.encode([other])
