"""The device-count benchmark: the search's scorer timed per device count."""

import os
import subprocess
import sys

import pytest

from esnac_jax.bench import devices as bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_measure_one_device_row():
  row = bench.measure(1,
                      'digits',
                      k=2,
                      rounds=2,
                      epochs=1,
                      batch=128,
                      dtype='float32')
  assert row['devices'] == 1 and row['k'] == 2
  assert len(row['round_s']) == 2 and all(s > 0 for s in row['round_s'])
  assert row['steady_round_s'] == row['round_s'][1]
  assert row['candidates_per_hour'] == 3600 * 2 / row['round_s'][1]
  assert len(row['val_accs']) == 2
  assert all(0 <= a <= 1 for accs in row['val_accs'] for a in accs)


@pytest.mark.slow
def test_cli_bad_input():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  p = subprocess.run(
      [sys.executable, '-m', 'esnac_jax.bench.devices', '--rounds=1'],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120)
  assert p.returncode != 0
  out = p.stdout + p.stderr
  assert '--rounds >= 2' in out and 'Traceback' not in out
