"""Early stopping of networks trained together: successive halving
(TrainConfig.halving) and the stop rule (distill.stop_hopeless), in the
epoch loop, both training paths, the job's evaluator and the config
checks."""

import dataclasses

import jax
import numpy as np
import pytest

from conftest import distillation_case, random_variables
from esnac_jax.train import LossConfig, OptimConfig, TrainConfig
from esnac_jax.train.loop import halved, keep_best_epochs


def test_halved_keeps_the_better_half_rounded_up():
  assert halved([0, 1, 2, 3], [0.1, 0.9, 0.5, 0.7]) == [1, 3]
  assert halved([2, 5, 7], [0.3, 0.2, 0.9]) == [2, 7]
  assert halved([4], [0.0]) == [4]
  assert halved([0, 1, 2, 3], [0.5] * 4) == [0, 1]  # ties: earlier first


def test_loop_trains_only_the_survivors_and_keeps_the_rest():
  # network i's accuracy after epoch e (1-based): i-th slope times e
  slopes = [0.05, 0.2, 0.1, 0.15, 0.01]
  trained = []

  def train_epoch(epoch, active):
    trained.append((epoch, list(active)))

  def validate(active):
    e = trained[-1][0] + 1
    return [slopes[i] * e for i in active]

  out = keep_best_epochs(4,
                         5,
                         train_epoch,
                         validate,
                         lambda idx: {i: f'w{i}' for i in idx},
                         halving=(1, 2))
  assert trained == [(0, [0, 1, 2, 3, 4]), (1, [1, 2, 3]), (2, [1, 3]),
                     (3, [1, 3])]
  assert [len(t.history) for t in out] == [1, 4, 2, 4, 1]
  assert out[2].val_acc == pytest.approx(0.2) and out[2].best_epoch == 1
  assert out[1].val_acc == pytest.approx(0.8) and out[1].best_epoch == 3
  assert out[4].variables == 'w4'


def test_halving_must_lie_within_the_epochs():
  opt = OptimConfig('adam', 1e-3)
  assert TrainConfig(4, 32, opt, halving=(1, 2)).halving == (1, 2)
  for bad in ((4,), (0, 2), (2, 1), (1, 1)):
    with pytest.raises(ValueError, match='halving must be increasing'):
      TrainConfig(4, 32, opt, halving=bad)
  with pytest.raises(ValueError, match='halving needs epochs >= 2'):
    TrainConfig(1, 32, opt, halving=(1,))


def _setup():
  teacher, tvars, ds, kids = distillation_case(4, seed=5)
  full = TrainConfig(3, 32, OptimConfig('adam', 1e-3), LossConfig('mse'))
  return teacher, tvars, ds, kids, full


def _check_halving(full_run, halved_run):
  """Survivors train exactly as without halving (same minibatches); the
  stopped ones keep their first epoch's score."""
  survivors = [i for i, t in enumerate(halved_run) if len(t.history) == 3]
  assert [len(t.history) for t in halved_run].count(1) == 2
  assert len(survivors) == 2
  firsts = [t.history[0] for t in full_run]
  assert min(firsts[i] for i in survivors) >= max(
      firsts[i] for i in range(4) if i not in survivors)
  for i, (a, b) in enumerate(zip(full_run, halved_run)):
    n = len(b.history)
    np.testing.assert_allclose(b.history, a.history[:n], atol=2 / 179)
    if n == 3:
      assert b.best_epoch == a.best_epoch


@pytest.mark.slow
def test_materialised_path_halves():
  from esnac_jax.train import distill_candidates
  teacher, tvars, ds, kids, full = _setup()
  a = distill_candidates(teacher, tvars, kids, ds, full, seed=0)
  half = dataclasses.replace(full, halving=(1,))
  b = distill_candidates(teacher, tvars, kids, ds, half, seed=0)
  _check_halving(a, b)


@pytest.mark.slow
@pytest.mark.parametrize('vmap', [False, True])
def test_masked_path_halves(vmap):
  from esnac_jax.train.masked import distill_masked
  teacher, tvars, ds, kids, full = _setup()
  a = distill_masked(teacher, tvars, kids, ds, full, seed=0, vmap=vmap)
  half = dataclasses.replace(full, halving=(1,))
  logs = []
  b = distill_masked(teacher,
                     tvars,
                     kids,
                     ds,
                     half,
                     seed=0,
                     vmap=vmap,
                     log=logs.append)
  _check_halving(a, b)
  assert ', 2/4 go on' in logs[0] and ', 2/4 go on' in logs[-1]
  # the stopped candidates' weights are their own, extracted at size
  for kid, t in zip(kids, b):
    shapes = jax.tree_util.tree_map(np.shape, t.variables['params'])
    assert shapes == jax.tree_util.tree_map(np.shape,
                                            random_variables(kid)['params'])


def test_rank_weights_decide_who_goes_on():
  """Weighted by reward per unit of accuracy, a small child that is less
  accurate but ahead on reward goes on; the weights must fit."""
  slopes = [0.05, 0.2, 0.1, 0.15, 0.01]
  trained = []

  def train_epoch(epoch, active):
    trained.append((epoch, list(active)))

  def validate(active):
    return [slopes[i] * (trained[-1][0] + 1) for i in active]

  out = keep_best_epochs(3,
                         5,
                         train_epoch,
                         validate,
                         lambda idx: {i: None for i in idx},
                         halving=(1,),
                         rank_weights=[1, 1, 1, 1, 100])
  assert trained[1] == (1, [1, 3, 4])
  assert [len(t.history) for t in out] == [1, 3, 1, 3, 3]
  with pytest.raises(ValueError, match='2 rank weights for 5 networks'):
    keep_best_epochs(3,
                     5,
                     train_epoch,
                     validate,
                     lambda idx: {},
                     halving=(1,),
                     rank_weights=[1, 2])


def test_the_job_ranks_halving_by_the_objective():
  from esnac_jax.arch import SamplerConfig, sample
  from esnac_jax.job.evaluate import Evaluator
  from esnac_jax.search import Constraints, reward
  from conftest import tiny_teacher
  t = tiny_teacher('resnet18')
  rng = np.random.default_rng(0)
  kids = [sample(t, rng, SamplerConfig()) for _ in range(3)]
  opt = OptimConfig('adam', 1e-3)
  ev = Evaluator(t, None, 0.8, None, TrainConfig(4, 32, opt, halving=(1, 2)))
  w = ev.rank_weights(kids)
  want = [reward(0.5, 0.8, k.num_params, t.num_params) for k in kids]
  np.testing.assert_allclose(np.multiply(w, 0.5), want)
  assert dataclasses.replace(ev,
                             train=TrainConfig(4, 32,
                                               opt)).rank_weights(kids) is None
  assert dataclasses.replace(
      ev,
      constraints=Constraints(objective='pareto')).rank_weights(kids) is None
  target = dataclasses.replace(ev,
                               constraints=Constraints(objective='target',
                                                       max_params=10**9))
  np.testing.assert_allclose(target.rank_weights(kids), [1 / 0.8] * 3)


def test_the_stop_rule_stops_networks_after_an_epoch_before_the_last():
  slopes = [0.05, 0.2, 0.1, 0.15]
  trained, asked = [], []

  def train_epoch(epoch, active):
    trained.append((epoch, list(active)))

  def validate(active):
    return [slopes[i] * (trained[-1][0] + 1) for i in active]

  def stop(i, done, acc):
    asked.append(done)
    return acc < 0.1 * done  # network 0 after epoch 1, network 2 never

  out = keep_best_epochs(3,
                         4,
                         train_epoch,
                         validate,
                         lambda idx: {i: i for i in idx},
                         stop=stop)
  assert trained == [(0, [0, 1, 2, 3]), (1, [1, 2, 3]), (2, [1, 2, 3])]
  assert [len(t.history) for t in out] == [1, 3, 3, 3]
  assert max(asked) == 2  # never asked after the last epoch
  # everyone stopped: the loop ends without training an empty set
  trained.clear()
  out = keep_best_epochs(3,
                         4,
                         train_epoch,
                         validate,
                         lambda idx: {i: i for i in idx},
                         stop=lambda i, done, acc: True)
  assert trained == [(0, [0, 1, 2, 3])]
  assert [t.best_epoch for t in out] == [0] * 4


def _history(t, curves, rewards):
  from esnac_jax.arch import SamplerConfig, sample
  from esnac_jax.search import Record
  rng = np.random.default_rng(3)
  out = []
  for curve, r in zip(curves, rewards):
    a = sample(t, rng, SamplerConfig())
    out.append(
        Record(a, a.num_params, a.flops, max(curve), r, 1, 0, 1.0, len(curve),
               tuple(curve)))
  return out


def test_the_job_stops_only_candidates_that_cannot_win():
  from esnac_jax.arch import SamplerConfig, sample
  from esnac_jax.job.evaluate import Evaluator
  from esnac_jax.search import Constraints, reward
  from conftest import tiny_teacher
  t = tiny_teacher('resnet18')
  rng = np.random.default_rng(0)
  kids = [sample(t, rng, SamplerConfig()) for _ in range(2)]
  opt = OptimConfig('adam', 1e-3)
  ev = Evaluator(t, None, 0.8, None, TrainConfig(3, 32, opt))
  # four full 3-epoch curves: the largest gain from epoch 1 is 0.3, from 2
  # it is 0.1
  curves = [(0.5, 0.7, 0.8), (0.4, 0.5, 0.6), (0.6, 0.6, 0.6), (0.3, 0.5, 0.6)]
  history = _history(t, curves, [0.2, 0.9, 0.3, 0.1])
  stop = ev.hopeless_rule(kids, history)
  for i, kid in enumerate(kids):
    per_acc = reward(1.0, 0.8, kid.num_params, t.num_params)
    # after epoch 1 the bound is reward(acc + 0.3); after 2 reward(acc + 0.1)
    for done, gain in ((1, 0.3), (2, 0.1)):
      edge = 0.9 / per_acc - gain  # accuracy whose bound is the best, 0.9
      if edge + 0.01 < 1:
        assert not stop(i, done, edge + 0.01)
      assert stop(i, done, edge - 0.01) == (edge - 0.01 + gain < 1)
  # too few full curves to bound the gains: no rule
  assert ev.hopeless_rule(kids, history[:3]) is None
  # under the target objective the score is accuracy / teacher accuracy
  target = dataclasses.replace(ev,
                               constraints=Constraints(objective='target',
                                                       max_params=10**9))
  stop = target.hopeless_rule(kids, history)
  assert stop(0, 2, 0.6) and not stop(0, 2, 0.63)  # (acc + 0.1) / 0.8 vs 0.9


@pytest.mark.slow
@pytest.mark.parametrize('path', ['materialised', 'masked_vmap'])
def test_both_paths_stop_the_candidates_the_rule_names(path):
  """Candidates the rule stops keep their first epoch; the others train
  exactly as without it (the same minibatches). Vmapped, the three left
  run padded to four."""
  from esnac_jax.train import distill_candidates
  from esnac_jax.train.masked import distill_masked
  teacher, tvars, ds, kids, full = _setup()

  def train(**kw):
    if path == 'materialised':
      return distill_candidates(teacher, tvars, kids, ds, full, seed=0, **kw)
    return distill_masked(teacher,
                          tvars,
                          kids,
                          ds,
                          full,
                          seed=0,
                          vmap=True,
                          **kw)

  a = train()
  low = sorted(range(4), key=lambda i: a[i].history[0])[:1]
  asked = {}

  def stop(i, done, acc):
    asked[i, done] = acc
    return i in low

  b = train(stop=stop)
  assert [len(t.history) == 1 for t in b] == [i in low for i in range(4)]
  for i, (x, y) in enumerate(zip(a, b)):
    n = len(y.history)
    np.testing.assert_allclose(y.history, x.history[:n], atol=2 / 179)
    assert asked[i, 1] == pytest.approx(y.history[0])
  assert sorted(asked) == sorted([(i, 1) for i in range(4)] +
                                 [(i, 2) for i in range(4) if i not in low])
