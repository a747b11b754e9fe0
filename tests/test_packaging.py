"""The wheel: built from this checkout, installed apart from it, it runs
a search from a directory outside the checkout with its shipped config."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    '--config.teacher.width=0.125', '--config.teacher.train.epochs=1',
    '--config.search.steps=1', '--config.search.candidates_per_step=2',
    '--config.search.esnac.pool_size=8', '--config.distill.epochs=1',
    '--config.final.epochs=1', '--config.final.top_n=1'
]


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
  dist, site, away = tmp_path / 'dist', tmp_path / 'site', tmp_path / 'away'
  away.mkdir()
  pip = [sys.executable, '-m', 'pip']
  p = subprocess.run(
      pip +
      ['wheel', '--no-deps', '--no-build-isolation', '-w',
       str(dist), ROOT],
      capture_output=True,
      text=True,
      timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  [wheel] = list(dist.glob('esnac_jax-*.whl'))
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    meta = z.read(next(n for n in names if n.endswith('METADATA'))).decode()
  assert 'esnac_jax/configs/digits.py' in names
  for needed in ('scikit-learn', 'tensorboardX', 'matplotlib', 'onnx', 'gcsfs'):
    assert f'Requires-Dist: {needed}' in meta, needed
  p = subprocess.run(
      pip +
      ['install', '--no-deps', '--target',
       str(site), str(wheel)],
      capture_output=True,
      text=True,
      timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS='cpu')
  workdir = away / 'w'
  # The console script, a shipped config by name, from outside the checkout.
  p = subprocess.run([
      str(site / 'bin' / 'esnac-jax'), '--config=digits.py',
      f'--workdir={workdir}', *TINY
  ],
                     cwd=away,
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  with open(workdir / 'results.json') as f:
    doc = json.load(f)
  assert doc['evaluations'] == 2 and doc['final']['chosen'] is not None
  # It ran the installed copy, not this checkout (which has a git commit).
  assert doc['provenance']['git_commit'] is None
  out = away / 'student.onnx'
  p = subprocess.run([
      str(site / 'bin' / 'esnac-jax-export'), f'--workdir={workdir}',
      f'--out={out}'
  ],
                     cwd=away,
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  assert out.stat().st_size > 0
