"""The job with its workdir on Cloud Storage (`gs://`), served by a fake
GCS on localhost through the real clients (gcsfs for etils.epath,
tensorstore's gcs driver for orbax): killed at several points, rerun, and
finished like a run on a local disk; the student exported to the bucket.
Nothing may appear on the local disk: a stray `os.path` call would create
a folder named `gs:` in the working directory."""

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fake_gcs
import kill_hook
from test_main import TINY
from conftest import job_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each rerun reaches the next point: inside the teacher's write, inside
# step 2's search checkpoint, just before a results.json write, inside the
# finalist's epoch save.
KILL_POINTS = [
    'save:teacher#1',
    'save:search#2',
    'json:results.json#1',
    'log:final epoch 1/2#1',
]


@pytest.fixture(scope='module')
def gcs():
  server = fake_gcs.FakeGCS()
  yield server
  server.stop()


def _run(args, cwd, env, timeout=600):
  return subprocess.run(args,
                        cwd=cwd,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=timeout)


def _env(gcs):
  return job_env(PYTHONPATH=ROOT, **gcs.env())


def _job(workdir):
  return [
      '-m', 'esnac_jax.main', f'--config={ROOT}/configs/digits.py',
      f'--workdir={workdir}', *TINY
  ]


def _history(doc):
  return [(c['arch'], c['val_acc'], c['reward'], c['step'])
          for c in doc['candidates']]


def _object(gcs, name):
  return gcs.read('bkt', name)[0]


@pytest.mark.slow
def test_killed_and_resumed_on_gcs_equals_a_local_run(gcs, tmp_path):
  env = _env(gcs)
  local = tmp_path / 'local'
  p = _run([sys.executable, *_job(local)], ROOT, env)
  assert p.returncode == 0, p.stderr[-3000:]
  with open(local / 'results.json') as f:
    want = json.load(f)

  cwd = tmp_path / 'cwd'  # the jobs' working directory stays empty
  cwd.mkdir()
  workdir = 'gs://bkt/runs/r1'
  log = []
  for point in KILL_POINTS:
    p = _run([sys.executable, '-c', kill_hook.SCRIPT] + _job(workdir)[2:], cwd,
             dict(env, KILL_AT=point))
    events = [l[7:] for l in p.stderr.splitlines() if l.startswith('event: ')]
    log.append((point, p.returncode, events[-2:]))
    assert p.returncode == -signal.SIGKILL, (point, p.stderr[-2000:], log)
    assert events[-1] == point
  p = _run([sys.executable, *_job(workdir)], cwd, env)
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'restored teacher from gs://bkt/runs/r1/teacher' in p.stdout
  assert 'final: resumed after epoch 1/2' in p.stdout
  assert 'results in gs://bkt/runs/r1/results.json' in p.stdout

  got = json.loads(_object(gcs, 'runs/r1/results.json'))
  assert _history(got) == _history(want)
  keys = ('index', 'val_acc', 'test_acc', 'val_reward', 'test_reward')
  assert {k: got['final']['chosen'][k] for k in keys} == \
      {k: want['final']['chosen'][k] for k in keys}
  names = gcs.names()
  for name in ('results.json', 'pareto.png', 'reward.png'):
    assert f'runs/r1/{name}' in names
  assert _object(gcs, 'runs/r1/reward.png').startswith(b'\x89PNG')
  assert any(n.startswith('runs/r1/tb/events.out.tfevents') for n in names)
  for folder in ('teacher', 'search', 'embedding', 'final-step3'):
    assert any(n.startswith(f'runs/r1/{folder}/') for n in names), folder
  assert not os.listdir(cwd)  # no local `gs:` folder
  assert not gcs.unknown

  # The student out of the bucket, into the bucket.
  out = 'gs://bkt/exports/student.onnx'
  p = _run([
      sys.executable, '-m', 'esnac_jax.export', f'--workdir={workdir}',
      '--format=onnx', f'--out={out}'
  ], cwd, env)
  assert p.returncode == 0, p.stderr[-3000:]
  import onnx
  model = onnx.load_model_from_string(_object(gcs, 'exports/student.onnx'))
  assert model.graph.output
  p = _run([
      sys.executable, '-m', 'esnac_jax.export', f'--workdir={workdir}',
      '--format=orbax', '--out=gs://bkt/exports/student'
  ], cwd, env)
  assert p.returncode == 0, p.stderr[-3000:]
  prep = json.loads(_object(gcs, 'exports/student/preprocessing.json'))
  assert prep['layout'] == 'NHWC' and len(prep['mean']) == 1
  assert any(n.startswith('exports/student/variables/') for n in gcs.names())
  assert not os.listdir(cwd)


@pytest.mark.slow
def test_npz_dataset_read_from_gcs(gcs, tmp_path):
  """Inputs on the bucket: an npz dataset is read through epath."""
  from esnac_jax.data import npz
  x = np.random.default_rng(0).integers(0, 255, (20, 8, 8, 1), np.uint8)
  y = np.arange(20) % 3
  buf = io.BytesIO()
  np.savez(buf, x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
  gcs.write('bkt', 'data/tiny.npz', buf.getvalue(), None)
  env = _env(gcs)
  code = ('from esnac_jax.data import load_dataset\n'
          "ds = load_dataset('npz:gs://bkt/data/tiny.npz')\n"
          'print(len(ds.train), len(ds.val), len(ds.test), ds.num_classes)')
  p = _run([sys.executable, '-c', code], tmp_path, env)
  assert p.returncode == 0, p.stderr[-3000:]
  assert p.stdout.split() == ['18', '2', '6', '3']
  assert npz.is_npz('npz:gs://bkt/data/tiny.npz')
