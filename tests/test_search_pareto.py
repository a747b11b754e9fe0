"""The accuracy-size front, its hypervolume, EHVI and the pareto searcher."""

import json

import numpy as np
import pytest

from esnac_jax.arch import SamplerConfig, check_child
from esnac_jax.job.loop import kept_indices
from esnac_jax.search import Constraints, ESNACConfig, Result, make_searcher
from esnac_jax.search import pareto
from esnac_jax.surrogate import SurrogateConfig
from conftest import tiny_teacher


def _points(rng, n):
  return rng.uniform(0.01, 0.99, n), rng.uniform(0.05, 0.95, n)


def test_front_and_hypervolume_by_hand():
  sizes, accs = [0.1, 0.3, 0.5, 0.2, 0.3], [0.5, 0.8, 0.7, 0.6, 0.8]
  # 0.5 is beaten by 0.3 (smaller, more accurate); the second (0.3, 0.8)
  # equals the first.
  assert pareto.front(sizes, accs) == [0, 3, 1]
  # Steps: [0.1, 0.2) at 0.5, [0.2, 0.3) at 0.6, [0.3, 1) at 0.8.
  assert pareto.hypervolume(sizes, accs) == pytest.approx(0.05 + 0.06 + 0.56)
  assert pareto.hypervolume([], []) == 0.0
  # Points outside the box (not smaller than the reference) add nothing.
  assert pareto.hypervolume([1.0, 2.0], [0.9, 0.99]) == 0.0
  assert pareto.hypervolume([0.5], [0.4], ref_size=2.0) == pytest.approx(0.6)


def test_hypervolume_grows_with_points_and_ignores_dominated_ones():
  rng = np.random.default_rng(0)
  s, a = _points(rng, 40)
  hv = [pareto.hypervolume(s[:n], a[:n]) for n in range(1, 41)]
  assert np.all(np.diff(hv) >= -1e-12) and hv[-1] <= 1.0
  f = pareto.front(s, a)
  assert pareto.hypervolume(s[f], a[f]) == pytest.approx(hv[-1])
  # Monte Carlo area of the dominated region agrees.
  u = rng.uniform(size=(200_000, 2))
  dominated = ((s[None, :] <= u[:, :1]) & (a[None, :] >= u[:, 1:])).any(1)
  assert dominated.mean() == pytest.approx(hv[-1], abs=0.005)


@pytest.mark.parametrize('seed', range(3))
def test_ehvi_without_noise_is_the_exact_improvement(seed):
  rng = np.random.default_rng(seed)
  s, a = _points(rng, 12)
  cs, ca = _points(rng, 50)
  got = pareto.ehvi(ca, np.full(50, 1e-9), cs, s, a)
  base = pareto.hypervolume(s, a)
  want = [
      pareto.hypervolume(np.r_[s, x], np.r_[a, y]) - base
      for x, y in zip(cs, ca)
  ]
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert (got > 1e-6).any() and (got < 1e-9).any()


def test_ehvi_is_the_expected_improvement_under_the_posterior():
  rng = np.random.default_rng(1)
  s, a = _points(rng, 8)
  base = pareto.hypervolume(s, a)
  for size, mean, std in [(0.2, 0.6, 0.1), (0.05, 0.3, 0.2), (0.7, 0.9, 0.05)]:
    draws = rng.normal(mean, std, 4000)
    mc = np.mean(
        [pareto.hypervolume(np.r_[s, size], np.r_[a, y]) - base for y in draws])
    got = pareto.ehvi(np.array([mean]), np.array([std]), np.array([size]), s,
                      a)[0]
    assert got == pytest.approx(mc, rel=0.05, abs=1e-4)


def test_a_batch_spreads_along_the_front():
  """Two kernels with the same posterior: alone, the second-best candidate
  is a near twin of the best; with the first pick believed at its mean,
  the second kernel takes a candidate of another size."""
  sizes = np.array([0.30, 0.31, 0.05])
  mean = np.array([[0.9, 0.89, 0.6]] * 2)
  std = np.full((2, 3), 0.01)
  alone = pareto.ehvi(mean[0], std[0], sizes, [], [])
  assert alone[1] > alone[2]
  picks = pareto.select_batch(mean, std, sizes, ['a', 'b', 'c'], [], [])
  assert picks == [(0, 0), (1, 2)]
  # Excluded and taken keys are never picked; per-kernel pools work too.
  assert pareto.select_batch(mean,
                             std,
                             sizes, ['a', 'b', 'c'], [], [],
                             exclude={'a'})[0] == (0, 1)
  own = pareto.select_batch(mean, std, np.stack([sizes, sizes[::-1]]),
                            [['a', 'b', 'c'], ['c', 'b', 'x']], [], [])
  assert own[0] == (0, 0) and own[1][1] != 2
  with pytest.raises(ValueError, match='do not match the posteriors'):
    pareto.select_batch(mean, std, sizes[:2], ['a', 'b'], [], [])


def test_spread_keeps_both_ends_of_the_front():
  sizes = [0.1, 0.2, 0.3, 0.4, 0.5, 0.45]
  accs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.1]
  assert pareto.spread(sizes, accs, 3) == [0, 2, 4]
  assert pareto.spread(sizes, accs, 10) == [0, 1, 2, 3, 4]
  assert pareto.spread(sizes, accs, 1) == [4]


TINY = ESNACConfig(surrogate=SurrogateConfig(hidden=8,
                                             num_layers=1,
                                             max_steps=15),
                   pool_size=64,
                   parents=4,
                   init_random=4,
                   random_frac=0.0)


def _accuracy(arch, teacher):
  """A known trade-off: accuracy grows with the share of parameters kept."""
  return 0.2 + 0.7 * (arch.num_params / teacher.num_params)**0.3


@pytest.mark.parametrize(
    'objective',
    ['pareto', pytest.param('pareto_flops', marks=pytest.mark.slow)])
def test_pareto_searcher_proposes_valid_new_children_and_resumes(objective):
  t = tiny_teacher('resnet18')
  c = Constraints(objective=objective)
  s = make_searcher('esnac', t, SamplerConfig(), 0, c, config=TINY)
  seen = set()
  for _ in range(3):
    archs = s.ask(4)
    assert len(set(archs)) == 4 and not seen & set(archs)
    for a in archs:
      check_child(a, t)
    acc = [_accuracy(a, t) for a in archs]
    s.tell(archs, [
        Result(x, c.reward(x, 0.9, a.num_params, t.num_params))
        for a, x in zip(archs, acc)
    ])
    seen |= set(archs)
  assert s.params is not None  # the surrogate was fitted and asked
  axis = c.pareto_axis
  kept = kept_indices(s.records, 3, axis)
  front = pareto.front([getattr(r, axis) for r in s.records],
                       [r.val_acc for r in s.records])
  assert set(kept) <= set(front) and len(kept) == min(3, len(front))
  state = json.loads(
      json.dumps({
          k: v for k, v in s.state().items() if k != 'arrays'
      }))
  state['arrays'] = s.state()['arrays']
  b = make_searcher('esnac', t, SamplerConfig(), 5, c, config=TINY)
  b.load_state(state)
  assert b.ask(4) == s.ask(4)
