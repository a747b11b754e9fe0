"""The reward reproduces the original README's table; constraints."""

import pytest

from esnac_jax.search import Constraints, reward
from conftest import tiny_teacher

# Original README (CIFAR-100, seed 127): c, student acc, teacher acc, f(x).
README = {
    'vgg19': (0.8470, 71.64, 73.71, 0.9492),
    'resnet18': (0.8876, 71.91, 78.68, 0.9024),
    'resnet34': (0.8664, 75.47, 78.71, 0.9417),
    'shufflenet': (0.8298, 68.17, 71.14, 0.9305),
}


@pytest.mark.parametrize('name', README)
def test_readme_table(name):
  c, acc, teacher_acc, f = README[name]
  teacher_params = 10_000_000
  params = round((1 - c) * teacher_params)
  assert reward(acc / 100, teacher_acc / 100, params,
                teacher_params) == pytest.approx(f, abs=5e-5)


def test_reward_edges():
  assert reward(0.9, 0.9, 100, 100) == 0.0  # the teacher itself
  assert reward(0.9, 0.9, 0, 100) == pytest.approx(1.0)
  assert reward(0.45, 0.9, 50, 100) == pytest.approx(0.75 * 0.5)
  with pytest.raises(ValueError, match='teacher accuracy must be > 0'):
    reward(0.5, 0.0, 1, 10)


def test_constraints():
  t = tiny_teacher('resnet18')
  assert Constraints().admits(t)
  assert not Constraints(max_params=t.num_params - 1).admits(t)
  assert not Constraints(max_flops=t.flops - 1).admits(t)
  assert Constraints(max_params=t.num_params, max_flops=t.flops).admits(t)
  low = Constraints(min_acc=0.5)
  assert low.reward(0.4, 0.9, 10, 100) == 0.0
  assert low.reward(0.6, 0.9, 10, 100) == reward(0.6, 0.9, 10, 100)
  with pytest.raises(ValueError, match='min_acc is a fraction'):
    Constraints(min_acc=80)
  with pytest.raises(ValueError, match='max_params must be >= 1'):
    Constraints(max_params=-5)


def test_target_objective_scores_accuracy_under_a_size_limit():
  c = Constraints(max_params=100, objective='target')
  # Relative accuracy, whatever the size: every proposal is within the limit.
  assert c.reward(0.72, 0.9, 60, 1000) == pytest.approx(0.8)
  assert c.reward(0.72, 0.9, 10, 1000) == pytest.approx(0.8)
  assert c.reward(0.9, 0.9, 60, 1000) > Constraints().reward(0.9, 0.9, 60, 1000)
  floor = Constraints(max_flops=10**6, min_acc=0.5, objective='target')
  assert floor.reward(0.4, 0.9, 60, 1000) == 0.0
  with pytest.raises(ValueError, match='teacher accuracy must be > 0'):
    c.reward(0.5, 0.0, 60, 1000)


def test_pareto_objectives_rank_by_the_reward_and_name_their_axis():
  assert Constraints(objective='pareto').pareto_axis == 'params'
  assert Constraints(objective='pareto_flops').pareto_axis == 'flops'
  assert Constraints(objective='target', max_params=5).pareto_axis is None
  assert Constraints(objective='pareto').reward(0.8, 0.9, 60, 1000) == \
      pytest.approx(reward(0.8, 0.9, 60, 1000))


@pytest.mark.parametrize('kwargs,message', [
    (dict(objective='target'), r"objective='target' maximises accuracy "
     r'under a size limit: set constraints\.max_params'),
    (dict(objective='front', max_params=5), r"objective='front' is not "
     'one of reward, target, pareto, pareto_flops'),
])
def test_bad_objectives(kwargs, message):
  with pytest.raises(ValueError, match=message):
    Constraints(**kwargs)
