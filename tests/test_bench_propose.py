"""bench.propose at tiny sizes: both paths run and report their split."""

import pytest

from esnac_jax.arch import get_teacher
from esnac_jax.bench import propose


def test_pool_row_times_both_paths():
  t = get_teacher('resnet18', input_size=32, num_classes=10, width=0.25)
  row = propose.pool_row(t, 200, 20)
  for kind in ('original', 'normalized'):
    r = row[kind]
    assert r['arch_path_s'] > r['arch_draw_s'] > 0
    assert r['array_path_s'] >= r['array_draw_s'] > 0
    assert 0 < r['array_path_later_s'] < r['arch_path_s']


@pytest.mark.slow
def test_propose_row_splits_the_ask():
  t = get_teacher('resnet18', input_size=32, num_classes=10, width=0.25)
  for arrays in (False, True):
    out = propose.propose_row(t,
                              'default',
                              history=4,
                              kernels=2,
                              fit_steps=1,
                              arrays=arrays)
    assert out['arrays'] is arrays and len(out['steps']) == 2
    for step in out['steps']:
      assert 0 < step['pool_s'] < step['total_s']
      assert abs(step['pool_s'] + step['surrogate_s'] - step['total_s']) < 1e-9
