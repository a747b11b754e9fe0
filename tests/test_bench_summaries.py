"""bench.summaries: best-so-far curves, statistics and verdicts per
milestone, budgets in training seconds, the scoreboard across teachers."""

import numpy as np
import pytest

from esnac_jax.bench import summaries as S


def _run(method, seed, rewards):
  return S.Run(method, seed, list(rewards), 1.0, 2.0)


def test_curves_and_reach():
  r = [0.2, 0.5, 0.4, 0.7, 0.6]
  np.testing.assert_allclose(S.best_curve(r), [0.2, 0.5, 0.5, 0.7, 0.7])
  assert S.evals_to_reach(r, 0.5) == 2
  assert S.evals_to_reach(r, 0.65) == 4
  assert S.evals_to_reach(r, 0.8) is None


def test_summary_numbers_and_verdict():
  runs = [
      _run('random', 0, [0.1, 0.3, 0.2, 0.4]),
      _run('random', 1, [0.2, 0.2, 0.5, 0.5]),
      _run('esnac', 0, [0.5, 0.6, 0.6, 0.9]),
      _run('esnac', 1, [0.3, 0.7, 0.7, 0.8])
  ]
  s = S.summarise(runs, [2, 4])
  assert s['target'] == pytest.approx(0.45)  # mean of 0.4 and 0.5
  rnd, esn = s['methods']['random'], s['methods']['esnac']
  assert rnd['best']['2']['mean'] == pytest.approx(0.25)
  assert rnd['best']['4']['std'] == pytest.approx(np.std([0.4, 0.5], ddof=1))
  assert esn['best']['4']['mean'] == pytest.approx(0.85)
  assert esn['to_reference_best'] == [1, 2]
  assert esn['to_reference_best_median'] == 1.5
  assert rnd['to_reference_best'] == [None, 3]
  assert rnd['to_reference_best_median'] == np.inf  # median of (3, inf)
  lines = S.verdict(s, 4)
  assert 'beats it' in lines[0] and 'within half' in lines[1]
  table = S.format_table(s, [2, 4])
  assert '0.8500 +- 0.0707' in table and 'never (1/2 seeds)' in table
  # a method that only ties does not "beat" the other
  worse = S.summarise(
      runs[:2] + [_run('esnac', 0, [0.45] * 4),
                  _run('esnac', 1, [0.45] * 4)], [4])
  assert 'does NOT beat' in S.verdict(worse, 4)[0]


def test_hypervolume_metric_of_the_pareto_objectives():
  """With a pareto objective a run's curve is the hypervolume of its
  candidates' accuracy-size front after each evaluation."""
  run = S.Run('esnac', 0, [0.1, 0.2, 0.3], 1.0, 2.0, 0, [50, 20, 80],
              [500, 100, 900], [0.5, 0.6, 0.7])
  hv = S.hypervolume_curve('params', 100)(run)
  # (0.5, 0.5) -> 0.25; (0.2, 0.6) dominates it -> 0.48; (0.8, 0.7) adds
  # a step of 0.2 x 0.1.
  np.testing.assert_allclose(hv, [0.25, 0.48, 0.50])
  by_flops = S.hypervolume_curve('flops', 1000)(run)
  np.testing.assert_allclose(by_flops, [0.25, 0.54, 0.55])
  s = S.summarise([run], [3],
                  reference='',
                  metric=S.hypervolume_curve('params', 100),
                  metric_name='hypervolume (accuracy against params)')
  assert s['methods']['esnac']['best']['3']['mean'] == pytest.approx(0.5)
  assert 'hv@3' in S.format_table(s, [3])
  with pytest.raises(ValueError, match='holds no candidate sizes'):
    S.hypervolume_curve('params', 100)(_run('random', 0, [0.1]))


def test_best_at_equal_training_time():
  """A budget in training seconds: a method whose candidates train faster
  gets further within it; a seed whose first candidate already exceeds
  the budget is left out of that column."""
  cheap = S.Run('esnac', 0, [0.1, 0.4, 0.3, 0.6], 1.0, 2.0, seconds=[2.0] * 4)
  dear = S.Run('random', 0, [0.2, 0.5, 0.7, 0.8], 1.0, 2.0, seconds=[5.0] * 4)
  late = S.Run('random', 1, [0.3, 0.3], 1.0, 2.0, seconds=[20.0, 1.0])
  assert S.at_train_seconds(cheap, S.best_reward(cheap), 6.0) == 0.4
  assert S.at_train_seconds(dear, S.best_reward(dear), 6.0) == 0.2
  assert S.at_train_seconds(late, S.best_reward(late), 6.0) is None
  assert S.at_train_seconds(_run('n2n', 0, [0.5]), np.array([0.5]), 6) is None
  s = S.summarise([cheap, dear, late], [2], train_budgets=[6.0, 21.0])
  at = {m: r['best_at_train_s'] for m, r in s['methods'].items()}
  assert at['esnac']['6'] == {'mean': 0.4, 'std': 0.0, 'n': 1}
  assert at['random']['6'] == {'mean': 0.2, 'std': 0.0, 'n': 1}
  assert at['random']['21']['mean'] == pytest.approx((0.8 + 0.3) / 2)
  assert at['random']['21']['n'] == 2
  table = S.format_table(s, [2])
  assert 'best@6s train' in table and '0.4000 +- 0.0000 (1)' in table


def test_scoreboard_counts_wins_ties_and_losses():

  def summary(esnac, random_mean, random_std):

    def best(m, sd):
      return {'8': {'mean': m, 'std': sd, 'n': 3}}

    return {
        'methods': {
            'esnac': {
                'best': best(esnac, 0.0)
            },
            'random': {
                'best': best(random_mean, random_std)
            }
        }
    }

  board = S.scoreboard(
      {
          'a': summary(0.70, 0.60, 0.05),  # ahead by 0.10
          'b': summary(0.62, 0.60, 0.05),  # within the std
          'c': summary(0.50, 0.60, 0.05)
      },  # behind by 0.10
      [8])
  assert board == {'8': {'a': 'win', 'b': 'tie', 'c': 'loss'}}
  assert '1 wins, 1 ties, 1 losses' in S.format_scoreboard(board)
