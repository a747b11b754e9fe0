"""Your own network: an Arch JSON teacher with your trained weights,
searched through the command, and the student taken away with
`load_student`."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import serialization

import esnac_jax
from esnac_jax.arch import INPUT, Arch, ArchBuilder
from esnac_jax.data import load_dataset, load_digits
from esnac_jax.models import init_variables
from esnac_jax.models.weights import load_variables
from esnac_jax.train import OptimConfig, TrainConfig
from esnac_jax.train.loop import train_many
from conftest import job_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = job_env()


def branchy_net() -> Arch:
  """A teacher of one's own: a stem, two branches (one depthwise) joined
  by concat, a residual block, a classifier."""
  b = ArchBuilder((8, 8, 1), 'branchy')
  stem = b.relu(b.bn(b.conv(INPUT, 16, 3, padding=1, name='stem'),
                     name='stem.bn'),
                name='stem.relu')
  left = b.relu(
      b.bn(b.conv(stem, 16, 3, padding=1, groups=16, name='left.dw'),
           name='left.bn'))
  right = b.relu(b.bn(b.conv(stem, 16, 1, name='right.pw'), name='right.bn'))
  joined = b.concat([left, right], name='join')
  x = b.relu(
      b.bn(b.conv(joined, 32, 3, stride=2, padding=1, name='down'),
           name='down.bn'))
  y = b.bn(b.conv(x, 32, 3, padding=1, name='res.conv'), name='res.bn')
  x = b.relu(b.add('identity', [x, y], name='res.add'))
  x = b.flatten(b.avgpool(x, 4, 4, name='pool'))
  b.linear(x, 10, name='fc')
  return b.build()


def _write_npz(path):
  """The digits as a user's own arrays: uint8 images 0..255, no
  validation split (the job carves one)."""
  d = load_digits()
  as_uint8 = lambda s: np.round(  # noqa: E731
      np.concatenate([s.images]) * 255).astype(np.uint8)
  np.savez(path,
           x_train=as_uint8(d.train),
           y_train=d.train.labels,
           x_test=as_uint8(d.test),
           y_test=d.test.labels)
  return f'npz:{path}'


def _trained_weights(arch, data):
  cfg = TrainConfig(epochs=3,
                    batch_size=64,
                    optim=OptimConfig('sgd', 0.05, schedule='cosine'))
  [t] = train_many([arch], [init_variables(arch, jax.random.key(0))],
                   load_dataset(data), cfg, 0)
  return t


def test_weights_files_are_checked_leaf_by_leaf(tmp_path):
  arch = branchy_net()
  good = jax.device_get(init_variables(arch, jax.random.key(1)))
  path = tmp_path / 'w.msgpack'
  path.write_bytes(serialization.to_bytes(good))
  got = load_variables(str(path), arch)
  for a, b in zip(jax.tree_util.tree_leaves(good),
                  jax.tree_util.tree_leaves(got)):
    np.testing.assert_array_equal(a, b)
  bad = jax.tree_util.tree_map(lambda a: a, good)
  del bad['params']['layer003']
  path.write_bytes(serialization.to_bytes(bad))
  with pytest.raises(ValueError, match='lack params/layer003'):
    load_variables(str(path), arch)
  bad = jax.tree_util.tree_map(lambda a: a, good)
  bad['params']['layer000']['kernel'] = np.zeros((3, 3, 1, 8), np.float32)
  path.write_bytes(serialization.to_bytes(bad))
  with pytest.raises(ValueError,
                     match=r'params/layer000/kernel has shape '
                     r'\(3, 3, 1, 8\), the teacher needs \(3, 3, 1, 16\)'):
    load_variables(str(path), arch)
  path.write_bytes(b'not msgpack at all')
  with pytest.raises(ValueError, match='unreadable'):
    load_variables(str(path), arch)
  with pytest.raises(ValueError, match='no weights at'):
    load_variables(str(tmp_path / 'missing'), arch)


@pytest.mark.slow
def test_own_arch_and_weights_through_the_command(tmp_path):
  arch = branchy_net()
  doc = tmp_path / 'teacher.json'
  doc.write_text(arch.to_json())
  data = _write_npz(tmp_path / 'mine.npz')
  trained = _trained_weights(arch, data)
  weights = tmp_path / 'teacher.msgpack'
  weights.write_bytes(serialization.to_bytes(jax.device_get(trained.variables)))
  workdir = tmp_path / 'w'
  cmd = [
      sys.executable, '-m', 'esnac_jax.main', '--config=configs/digits.py',
      f'--workdir={workdir}', f'--config.dataset={data}',
      f'--config.teacher.arch={doc}', f'--config.teacher.weights={weights}',
      '--config.teacher.width=1.0', '--config.search.steps=2',
      '--config.search.candidates_per_step=2',
      '--config.search.esnac.pool_size=16',
      '--config.search.esnac.init_random=2',
      '--config.search.surrogate.hidden=8',
      '--config.search.surrogate.num_layers=1',
      '--config.search.surrogate.max_steps=5', '--config.distill.epochs=1',
      '--config.final.epochs=2', '--config.final.top_n=1'
  ]
  p = subprocess.run(cmd,
                     cwd=ROOT,
                     env=ENV,
                     capture_output=True,
                     text=True,
                     timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'teacher epoch' not in p.stdout  # measured, not trained
  assert f'teacher weights from {weights}' in p.stdout
  with open(workdir / 'results.json') as f:
    res = json.load(f)
  assert res['teacher']['val_acc'] == pytest.approx(trained.val_acc)
  assert res['teacher']['arch'] == json.loads(arch.to_json())
  for c in res['candidates']:
    names = {l['name'] for l in c['arch']['layers']}
    assert names <= {l.name for l in arch.layers}  # children of this teacher

  student = esnac_jax.load_student(str(workdir))
  chosen = res['final']['chosen']
  assert student.index == chosen['index']
  ds = load_dataset(data)
  assert ds.test.images.dtype == np.uint8  # raw, as the file holds them
  pred = np.argmax(np.asarray(student.apply(ds.test.images)), -1)
  assert np.mean(pred == ds.test.labels) == pytest.approx(chosen['test_acc'],
                                                          abs=1e-6)
  assert student.apply(ds.test.images[0]).shape == (1, 10)
  with pytest.raises(ValueError, match='takes images of shape'):
    student.apply(np.zeros((2, 9, 9, 1)))
  with pytest.raises(ValueError, match='no finalist at rank 3'):
    esnac_jax.load_student(str(workdir), rank=3)

  # Exported to ONNX through the command: onnxruntime gives the same logits.
  onnx_path = tmp_path / 'student.onnx'
  p = subprocess.run([
      sys.executable, '-m', 'esnac_jax.export', f'--workdir={workdir}',
      '--format=onnx', f'--out={onnx_path}'
  ],
                     cwd=ROOT,
                     env=ENV,
                     capture_output=True,
                     text=True,
                     timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  assert f'exported candidate {student.index}' in p.stdout
  ort = pytest.importorskip('onnxruntime')
  session = ort.InferenceSession(str(onnx_path),
                                 providers=['CPUExecutionProvider'])
  [got] = session.run(
      ['logits'],  # float32, in the raw units
      {'images': ds.test.images.astype(np.float32)})
  np.testing.assert_allclose(got,
                             np.asarray(student.apply(ds.test.images)),
                             rtol=1e-4,
                             atol=1e-4)


@pytest.mark.slow
def test_an_onnx_teacher_through_the_command(tmp_path):
  """teacher.arch=FILE.onnx: the architecture and the trained weights both
  come from the ONNX file; the teacher is measured, not trained, and
  scores what its weights score."""
  from esnac_jax.export import save_onnx
  arch = branchy_net()
  data = _write_npz(tmp_path / 'mine.npz')
  trained = _trained_weights(arch, data)
  model = tmp_path / 'teacher.onnx'
  save_onnx(str(model), arch, jax.device_get(trained.variables))
  workdir = tmp_path / 'w'
  p = subprocess.run([
      sys.executable, '-m', 'esnac_jax.main', '--config=configs/digits.py',
      f'--workdir={workdir}', f'--config.dataset={data}',
      f'--config.teacher.onnx={model}', '--config.teacher.width=1.0',
      '--config.search.steps=1', '--config.search.candidates_per_step=2',
      '--config.search.esnac.init_random=2', '--config.distill.epochs=1',
      '--config.final.top_n=1', '--config.final.epochs=1'
  ],
                     cwd=ROOT,
                     env=ENV,
                     capture_output=True,
                     text=True,
                     timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'teacher epoch' not in p.stdout
  assert f'teacher weights from {model}' in p.stdout
  with open(workdir / 'results.json') as f:
    res = json.load(f)
  assert res['teacher']['params'] == arch.num_params
  assert res['teacher']['val_acc'] == pytest.approx(trained.val_acc)
  assert len(res['candidates']) == 2


@pytest.mark.slow
def test_a_teacher_that_learnt_nothing_gets_a_warning(tmp_path):
  """Weights whose classifier is all zeros answer one class for every
  image: the job says so before the search, and still runs (a dry run on
  random weights is allowed)."""
  arch = branchy_net()
  doc = tmp_path / 'teacher.json'
  doc.write_text(arch.to_json())
  v = jax.device_get(init_variables(arch, jax.random.key(0)))
  fc = max(v['params'])  # the last layer: the classifier
  v['params'][fc] = jax.tree_util.tree_map(np.zeros_like, v['params'][fc])
  weights = tmp_path / 'teacher.msgpack'
  weights.write_bytes(serialization.to_bytes(v))
  workdir = tmp_path / 'w'
  p = subprocess.run([
      sys.executable, '-m', 'esnac_jax.main', '--config=configs/digits.py',
      f'--workdir={workdir}', f'--config.teacher.arch={doc}',
      f'--config.teacher.weights={weights}', '--config.teacher.width=1.0',
      '--config.search.steps=1', '--config.search.candidates_per_step=2',
      '--config.search.esnac.init_random=2', '--config.distill.epochs=1',
      '--config.final.top_n=0'
  ],
                     cwd=ROOT,
                     env=ENV,
                     capture_output=True,
                     text=True,
                     timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  [line] = [s for s in p.stdout.splitlines() if 'most common class' in s]
  assert re.fullmatch(
      r'warning: the teacher scores 0\.\d{4} validation accuracy, no better '
      r'than always answering the most common class \(0\.\d{4}\), so '
      r'rewards relative to it mean little; check the weights and the data',
      line), line
  assert p.stdout.index(line) < p.stdout.index('step 1/1')
  assert (workdir / 'results.json').exists()
