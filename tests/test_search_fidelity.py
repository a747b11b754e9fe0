"""What the surrogate fits on when successive halving stopped candidates
early (search.fidelity), and the learning curves records keep for it."""

import json

import numpy as np
import pytest

from conftest import tiny_teacher
from esnac_jax.arch import SamplerConfig, sample
from esnac_jax.search import ESNACConfig, Record, Result, make_searcher
from esnac_jax.search import fidelity as F
from esnac_jax.surrogate import SurrogateConfig


def _rec(arch, curve, reward_per_acc=0.5):
  acc = max(curve)
  return Record(arch, arch.num_params, arch.flops, acc, reward_per_acc * acc, 0,
                int(np.argmax(curve)), 1.0, len(curve), tuple(curve))


@pytest.fixture(scope='module')
def archs():
  t = tiny_teacher('resnet18')
  rng = np.random.default_rng(0)
  return [sample(t, rng, SamplerConfig()) for _ in range(5)]


def _halved(archs):
  # two ran the full 4 epochs, one stopped after 2, two after 1
  return [
      _rec(archs[0], [0.5, 0.6, 0.7, 0.8]),
      _rec(archs[1], [0.4, 0.6, 0.6, 0.7], 0.8),
      _rec(archs[2], [0.3, 0.45]),
      _rec(archs[3], [0.2]),
      _rec(archs[4], [0.0]),
  ]


def test_epoch_gains_come_from_the_full_budget_curves(archs):
  gains = F.epoch_gains(_halved(archs))
  assert F.full_budget(_halved(archs)) == 4
  # from epoch 1: (0.8 - 0.5 + 0.7 - 0.4) / 2; from 2: (0.2 + 0.1) / 2 ...
  assert gains == pytest.approx({1: 0.3, 2: 0.15, 3: 0.1})


def test_max_gains_bound_what_a_candidate_can_still_gain(archs):
  recs = _halved(archs)
  # full-budget curves [.5 .6 .7 .8] and [.4 .6 .6 .7]: from epoch 1 the
  # larger gain is 0.3, from 2 it is 0.2, from 3 it is 0.1
  assert F.max_gains(recs, min_curves=2) == pytest.approx({
      1: 0.3,
      2: 0.2,
      3: 0.1
  })
  assert F.max_gains(recs, min_curves=3) == {}  # too few to bound
  assert F.max_gains([], min_curves=1) == {}


def test_extrapolate_lifts_stopped_candidates_by_their_epochs_gain(archs):
  recs = _halved(archs)
  idx, y = F.fit_targets(recs, 'extrapolate')
  assert idx == [0, 1, 2, 3, 4]
  # full-budget rewards stay; a stopped one's reward scales with accuracy
  np.testing.assert_allclose(y, [0.4, 0.56, 0.5 * 0.6, 0.5 * 0.5, 0.0],
                             rtol=1e-6)
  idx, acc = F.fit_targets(recs, 'extrapolate', accuracy=True)
  np.testing.assert_allclose(acc, [0.8, 0.7, 0.6, 0.5, 0.0], rtol=1e-6)


def test_raw_and_full_only(archs):
  recs = _halved(archs)
  idx, y = F.fit_targets(recs, 'raw')
  assert idx == [0, 1, 2, 3, 4]
  np.testing.assert_allclose(y, [r.reward for r in recs])
  idx, acc = F.fit_targets(recs, 'full_only', accuracy=True)
  assert idx == [0, 1]
  np.testing.assert_allclose(acc, [0.8, 0.7])


def test_without_halving_every_mode_is_the_same(archs):
  recs = [_rec(a, [0.1 * i, 0.2 * i]) for i, a in enumerate(archs)]
  old = [Record(a, 1, 1, 0.5, 0.3, 0) for a in archs]  # no epochs known
  for history in (recs, old):
    want = F.fit_targets(history, 'raw')
    for mode in F.MODES:
      idx, y = F.fit_targets(history, mode)
      assert idx == want[0]
      np.testing.assert_array_equal(y, want[1])


def test_no_full_budget_curve_means_no_correction(archs):
  recs = _halved(archs)
  recs[0] = Record(*[
      getattr(recs[0], f)
      for f in ('arch', 'params', 'flops', 'val_acc', 'reward', 'step',
                'best_epoch', 'seconds', 'epochs')
  ])  # a full-budget record without its curve
  recs[1] = recs[0]
  assert F.epoch_gains(recs) == {}
  np.testing.assert_allclose(
      F.fit_targets(recs, 'extrapolate')[1],
      F.fit_targets(recs, 'raw')[1])


def test_unknown_mode_is_refused(archs):
  with pytest.raises(ValueError, match="unknown fidelity mode 'best'"):
    F.fit_targets(_halved(archs), 'best')
  with pytest.raises(ValueError, match="unknown fidelity 'best'"):
    ESNACConfig(fidelity='best')
  assert ESNACConfig.faithful().fidelity == 'raw'


@pytest.mark.parametrize('mode', F.MODES)
def test_searcher_keeps_curves_and_proposes_in_every_mode(archs, mode):
  """Curves survive tell and a JSON round trip of the state; the surrogate
  fits on the mode's targets and still proposes new children."""
  t = tiny_teacher('resnet18')
  config = ESNACConfig(surrogate=SurrogateConfig(hidden=8,
                                                 num_layers=1,
                                                 max_steps=5),
                       pool_size=16,
                       init_random=0,
                       random_frac=0.0,
                       fidelity=mode)
  s = make_searcher('esnac', t, SamplerConfig(), 0, config=config)
  first = s.ask(4)
  curves = [(0.5, 0.7), (0.4, 0.6), (0.3,), (0.2,)]
  s.tell(first,
         [Result(max(c), 0.5 * max(c), 0, 1.0, len(c), c) for c in curves])
  state = json.loads(
      json.dumps({
          k: v for k, v in s.state().items() if k != 'arrays'
      }))
  again = make_searcher('esnac', t, SamplerConfig(), 0, config=config)
  again.load_state(dict(state, arrays=None))
  assert [r.curve for r in again.records] == curves
  nxt = again.ask(2)
  assert len(set(nxt)) == 2 and not set(nxt) & set(first)
