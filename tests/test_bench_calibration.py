"""bench.calibration: rank statistics, and the benchmark on a tiny teacher."""

import json
import os

import numpy as np
import pytest

from esnac_jax.bench import calibration as B
from test_bench_compare import _tiny_config


def test_spearman_and_ranks():
  x = np.array([0.3, 0.1, 0.2, 0.9])
  np.testing.assert_array_equal(B.ranks(x), [2, 0, 1, 3])
  assert B.spearman(x, 2 * x + 1) == pytest.approx(1.0)
  assert B.spearman(x, -x) == pytest.approx(-1.0)
  assert B.spearman(x, np.ones(4)) == 0.0
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=2000), rng.normal(size=2000)
  assert abs(B.spearman(a, b)) < 0.1


@pytest.mark.slow
def test_calibration_benchmark_end_to_end(tmp_path):
  """Scores prior draws (a second run reuses every score), fits the
  surrogate at each history size and reports statistics in range."""
  cfg = _tiny_config()
  wd = str(tmp_path / 'cal')
  with pytest.raises(ValueError, match='below --candidates=6'):
    B.calibration(cfg, wd, [2, 6], 6, 1)
  logs = []
  doc = B.calibration(cfg, wd, [2, 4], 8, 2, log=logs.append)
  assert doc['format'] == B.FORMAT and len(doc['rows']) == 4
  for row in doc['rows']:
    assert -1 <= row['spearman']['mean'] <= 1
    assert 0 <= row['within_1sd']['mean'] <= row['within_2sd']['mean'] <= 1
    assert 0 <= row['ei_pick']['mean'] < 100
    assert 0 <= row['mean_pick']['mean'] < 100
  with open(os.path.join(wd, 'calibration.json')) as f:
    assert json.load(f)['rows'] == doc['rows']
  with open(os.path.join(wd, 'calibration.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with open(os.path.join(wd, 'scores.jsonl')) as f:
    scored = len(f.readlines())
  assert scored == 8
  again = B.calibration(cfg, wd, [2, 4], 8, 2, log=logs.append)
  assert again['rows'] == doc['rows']
  with open(os.path.join(wd, 'scores.jsonl')) as f:
    assert len(f.readlines()) == scored  # nothing trained again
  assert 'size only' in B.format_table(doc)
