"""Searchers behind ask/tell: valid, new, distinct proposals; state round
trips; the ESNAC searcher learns a known reward."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from esnac_jax.arch import SamplerConfig, check_child
from esnac_jax.search import (Constraints, ESNACConfig, N2NConfig, Result,
                              make_searcher, reward)
from esnac_jax.surrogate import SurrogateConfig
from conftest import tiny_teacher

# Every ask after the first is the surrogate's (no initial design, no
# prior share), so these tests see the kernel's proposals.
TINY = ESNACConfig(surrogate=SurrogateConfig(hidden=8,
                                             num_layers=1,
                                             max_steps=15),
                   pool_size=64,
                   parents=4,
                   init_random=0,
                   random_frac=0.0)
TINY_FAITHFUL = ESNACConfig.faithful(surrogate=SurrogateConfig.faithful(
    hidden=8, num_layers=1, max_steps=15),
                                     pool_size=24)


def _searcher(name, seed=0, constraints=Constraints(), config=TINY):
  t = tiny_teacher('resnet18')
  kw = {'config': config} if name == 'esnac' else {}
  if name == 'evolution':
    kw = {'population': 6, 'tournament': 3}
  if name == 'n2n':
    kw = {'config': N2NConfig(stage1_asks=2, hidden=8, num_layers=1)}
  return make_searcher(name, t, SamplerConfig(), seed, constraints, **kw)


def _synthetic(arch, teacher):
  """A known reward: compression, discounted for removed layers."""
  removed = sum(a.kind == 'identity' and t.kind != 'identity'
                for a, t in zip(arch.layers, teacher.layers))
  acc = 0.9 * (1 - 0.8 * removed / len(teacher.layers))
  return Result(acc, reward(acc, 0.9, arch.num_params, teacher.num_params))


def _round(s, n):
  archs = s.ask(n)
  s.tell(archs, [_synthetic(a, s.teacher) for a in archs])
  return archs


@pytest.mark.parametrize(
    'name,config', [('random', None), ('evolution', None), ('n2n', None),
                    ('esnac', TINY), ('esnac', TINY_FAITHFUL)],
    ids=['random', 'evolution', 'n2n', 'esnac', 'faithful'])
def test_proposals_are_valid_new_and_distinct(name, config):
  limit = Constraints(max_params=tiny_teacher('resnet18').num_params // 4)
  s = _searcher(name, constraints=limit, config=config)
  seen = set()
  for _ in range(3):
    archs = _round(s, 4)
    assert len(archs) == 4 and len(set(archs)) == 4
    assert not seen & set(archs)
    for a in archs:
      check_child(a, s.teacher)
      assert a.num_params <= limit.max_params
    seen |= set(archs)
  assert len(s.records) == 12 and [r.step for r in s.records] == \
      [1] * 4 + [2] * 4 + [3] * 4
  if name == 'esnac':
    # Features are kept for the history only, not for every pool candidate
    # (8,000 new ones per faithful step).
    assert set(s._feats) <= seen | {s.teacher}


@pytest.mark.parametrize('name', ['random', 'evolution', 'esnac', 'n2n'])
def test_state_round_trip_resumes_exactly(name):
  a = _searcher(name)
  for _ in range(3):  # n2n: past its removal stage (2 asks)
    _round(a, 4)
  state = json.loads(
      json.dumps({
          k: v for k, v in a.state().items() if k != 'arrays'
      }))
  state['arrays'] = a.state()['arrays']
  b = _searcher(name, seed=99)  # the seed comes from the state
  b.load_state(state)
  assert b.records == a.records and b.asks == a.asks
  assert b.ask(4) == a.ask(4)


def test_same_seed_same_proposals_other_seed_differs():
  assert _searcher('esnac', 3).ask(4) == _searcher('esnac', 3).ask(4)
  assert _searcher('random', 3).ask(4) != _searcher('random', 4).ask(4)


def test_load_state_of_another_searcher_is_refused():
  a = _searcher('random')
  _round(a, 2)
  with pytest.raises(ValueError, match="from searcher 'random', not 'esnac'"):
    _searcher('esnac').load_state(a.state())


@pytest.mark.slow
def test_esnac_learns_a_known_reward():
  """After 4 rounds on the synthetic reward, the next ESNAC batches score
  clearly higher than random search's (mean over 3 seeds)."""
  gains = []
  for seed in range(3):
    means = {}
    for name in ('esnac', 'random'):
      s = _searcher(name, seed)
      for _ in range(4):
        _round(s, 6)
      batch = s.ask(6)
      means[name] = np.mean([_synthetic(x, s.teacher).reward for x in batch])
    gains.append(means['esnac'] - means['random'])
  assert np.mean(gains) > 0.05, gains


def test_initial_design_draws_from_the_prior_first():
  """With init_random=8, the asks made before 8 candidates are evaluated
  are random search's (same seed, same sampler); the surrogate is fitted
  from the next ask on."""
  config = dataclasses.replace(TINY, init_random=8)
  s, r = _searcher('esnac', 5, config=config), _searcher('random', 5)
  for _ in range(2):
    assert _round(s, 4) == _round(r, 4)
    assert s.params is None and not s.last_fit
  _round(s, 4)
  assert s.params is not None and s.last_fit


def test_prior_share_of_every_batch():
  """random_frac=0.5: half of each batch from the surrogate (one kernel
  each), half from the prior; all new and distinct."""
  config = dataclasses.replace(TINY, random_frac=0.5)
  s = _searcher('esnac', 2, config=config)
  _round(s, 4)
  archs = _round(s, 4)
  assert len(set(archs)) == 4 and len(set(r.arch for r in s.records)) == 8
  assert jax.tree_util.tree_leaves(s.params['gp'])[0].shape[0] == 2


@pytest.mark.parametrize(
    'field,value,message',
    [('init_random', -1, 'init_random must be >= 0'),
     ('random_frac', 1.5, r'random_frac must be in \[0, 1\]')])
def test_bad_proposal_settings(field, value, message):
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(TINY, **{field: value})


def test_impossible_constraints_are_a_clear_error():
  s = _searcher('random', constraints=Constraints(max_params=10))
  with pytest.raises(ValueError, match='constraints .* too tight'):
    s.ask(2)


def test_n2n_policy_learns_the_reward():
  """REINFORCE moves the removal policy towards what the reward favours:
  here removing nothing (accuracy collapses with every removed layer)."""
  s = _searcher('n2n', config=None)
  s.config = N2NConfig(stage1_asks=100, hidden=8, num_layers=1)

  def keep_all(arch, teacher):
    removed = sum(a.kind == 'identity' and t.kind != 'identity'
                  for a, t in zip(arch.layers, teacher.layers))
    return Result(0.9, 1.0 - removed / 20)

  def removed_frac(archs):
    return np.mean([sum(a.kind == 'identity' for a in x.layers) for x in archs])

  first = s.ask(8)
  s.tell(first, [keep_all(a, s.teacher) for a in first])
  for _ in range(15):
    batch = s.ask(8)
    s.tell(batch, [keep_all(a, s.teacher) for a in batch])
  assert removed_frac(s.ask(8)) < 0.5 * removed_frac(first)


def test_small_search_space_gives_a_smaller_pool():
  """A teacher with few distinct children: the pool holds what exists, and
  the searcher still proposes new candidates until the space runs out."""
  from esnac_jax.arch import INPUT, ArchBuilder
  b = ArchBuilder(input_shape=(8, 8, 1), name='tiny')
  x = b.relu(b.bn(b.conv(INPUT, 2, 3, 1, 1, name='c1'), name='b1'), name='r1')
  x = b.avgpool(x, kernel=8, stride=1, name='pool')
  b.linear(b.flatten(x, name='flat'), 10, name='fc')
  teacher = b.build()
  config = dataclasses.replace(TINY, pool_size=5000, init_random=0)
  s = make_searcher('esnac', teacher, SamplerConfig(), 0, config=config)
  seen = set()
  for _ in range(2):
    archs = s.ask(2)
    assert len(set(archs)) == 2 and not seen & set(archs)
    seen |= set(archs)
    s.tell(archs, [
        Result(0.5, reward(0.5, 0.9, a.num_params, teacher.num_params))
        for a in archs
    ])


def test_skip_hopeless_proposes_only_children_that_could_win():
  """With a best record b, a child can win only if its size factor c(2-c)
  exceeds b's times b's accuracy: at accuracy 1, only children smaller
  than b. Every proposal, the prior's share too, is; under `target`
  every feasible size could win."""
  from esnac_jax.arch import sample
  config = dataclasses.replace(TINY, skip_hopeless=True, random_frac=0.5)
  s = _searcher('esnac', 3, config=config)
  assert s.winnable() is s.constraints  # nothing to beat yet
  _round(s, 4)
  t = s.teacher
  rng = np.random.default_rng(7)
  kids = sorted((sample(t, rng, SamplerConfig()) for _ in range(40)),
                key=lambda a: a.num_params)
  b = next(a for a in kids[len(kids) // 2:] if a not in s.seen)
  s.tell([b], [Result(1.0, reward(1.0, 0.9, b.num_params, t.num_params))])
  assert s.best(1)[0].arch == b
  assert s.winnable().max_params == b.num_params - 1
  for a in s.ask(4):
    assert a.num_params < b.num_params
  # at accuracy 0.5, children up to the size whose factor is half b's
  s.records[-1] = dataclasses.replace(s.records[-1], val_acc=0.5)
  limit = s.winnable().max_params
  c = 1 - b.num_params / t.num_params
  for p in (limit, limit + 1):
    cp = 1 - p / t.num_params
    assert (cp * (2 - cp) > 0.5 * c * (2 - c)) == (p == limit)
  s.constraints = Constraints(objective='target', max_params=10**9)
  assert s.winnable() is s.constraints
