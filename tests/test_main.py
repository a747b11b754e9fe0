"""End to end through `python -m esnac_jax.main`: outputs, resume after
SIGKILL at any of 17 points of one run, bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import kill_hook
from esnac_jax.search import reward
from conftest import job_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = job_env()
TINY = [
    '--config.teacher.width=0.125',
    '--config.teacher.train.epochs=2',
    '--config.search.steps=3',
    '--config.search.candidates_per_step=2',
    '--config.search.esnac.pool_size=32',
    '--config.search.surrogate.hidden=8',
    '--config.search.surrogate.num_layers=1',
    '--config.search.surrogate.max_steps=10',
    '--config.search.esnac.init_random=2',  # a fitted embedding too
    '--config.distill.epochs=1',
    '--config.final.epochs=2',
    '--config.final.top_n=1',
    '--config.teacher.train.checkpoint_every_s=0',  # progress saved
    '--config.final.checkpoint_every_s=0'
]  # every epoch


def _cmd(workdir, *extra, config='configs/digits.py'):
  return [
      sys.executable, '-m', 'esnac_jax.main', f'--config={config}',
      f'--workdir={workdir}', *TINY, *extra
  ]


def _run(cmd, env=ENV, timeout=600):
  return subprocess.run(cmd,
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=timeout)


def _history(workdir):
  with open(os.path.join(workdir, 'results.json')) as f:
    doc = json.load(f)
  return [(c['arch'], c['val_acc'], c['reward'], c['step'])
          for c in doc['candidates']]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """One uninterrupted tiny search on digits."""
  workdir = str(tmp_path_factory.mktemp('reference'))
  p = _run(_cmd(workdir))
  assert p.returncode == 0, p.stderr[-3000:]
  return workdir, p.stdout


@pytest.mark.slow
def test_outputs(reference):
  workdir, out = reference
  with open(os.path.join(workdir, 'results.json')) as f:
    doc = json.load(f)
  assert doc['format'] == 'esnac_jax.results/1'
  assert doc['evaluations'] == 6 and doc['steps_done'] == 3
  assert {c['step'] for c in doc['candidates']} == {1, 2, 3}
  for c in doc['candidates']:
    assert 0 < c['params'] < doc['teacher']['params'] and c['flops'] > 0
    assert 0 <= c['val_acc'] <= 1
  assert doc['best']['reward'] == max(c['reward'] for c in doc['candidates'])
  chosen = doc['final']['chosen']
  assert chosen['index'] == doc['best']['index']  # top_n = 1
  assert 0 <= chosen['test_acc'] <= 1 and 'val_acc' in chosen
  assert doc['teacher']['val_acc'] > 0.1 and doc['config']['seed'] == 127
  made = doc['provenance']
  import jax
  assert made['packages']['jax'] == jax.__version__
  assert made['backend'] == 'cpu' and made['devices'] == {'cpu': 1}
  assert f'--workdir={workdir}' in made['command']
  assert made['git_commit'] is None or len(made['git_commit']) >= 40
  assert doc['data']['name'] == 'digits' and len(doc['data']['mean']) == 1
  for png in ('pareto.png', 'reward.png'):
    with open(os.path.join(workdir, png), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert any(
      n.startswith('events.out.tfevents')
      for n in os.listdir(os.path.join(workdir, 'tb')))
  assert 'step 3/3 done' in out and 'ETA' in out and 'best so far' in out
  # The best reward is undominated in size and accuracy: on the front.
  front = [c['index'] for c in doc['pareto']['params']]
  assert doc['best']['index'] in front and 'Pareto front' in out
  assert all(
      c['val_acc'] < d['val_acc']
      for c, d in zip(doc['pareto']['params'], doc['pareto']['params'][1:]))


@pytest.mark.slow
def test_rerun_of_a_finished_search_does_no_new_work(reference):
  workdir, _ = reference
  before = _history(workdir)
  p = _run(_cmd(workdir))
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'resumed the search' in p.stdout and 'training them' not in p.stdout
  assert 'restored teacher' in p.stdout
  assert 'already trained' in p.stdout
  assert _history(workdir) == before


@pytest.mark.slow
def test_an_extended_search_keeps_its_earlier_finalists(reference, tmp_path):
  """More search steps on a finished workdir: the earlier final stage's
  finalist is copied into the new one and chosen among, not trained again
  nor forgotten; finalists trained with other final settings are not."""
  workdir = str(tmp_path / 'extended')
  shutil.copytree(reference[0], workdir)
  with open(os.path.join(workdir, 'results.json')) as f:
    before = json.load(f)['final']
  old = before['chosen']
  p = _run(_cmd(workdir, '--config.search.steps=4'))
  assert p.returncode == 0, p.stderr[-3000:]
  assert f'candidate {old["index"]} already trained in ' in p.stdout
  assert f'training candidate {old["index"]} ' not in p.stdout
  with open(os.path.join(workdir, 'results.json')) as f:
    final = json.load(f)['final']
  entries = {e['index']: e for e in final['candidates']}
  assert entries[old['index']]['val_acc'] == old['val_acc']
  assert entries[old['index']]['copied_from'].endswith('final-step3')
  assert final['chosen']['val_reward'] == max(
      e['val_reward'] for e in entries.values())
  assert final['chosen']['val_reward'] >= old['val_reward']
  from esnac_jax import load_student
  assert load_student(workdir).index == final['chosen']['index']
  p = _run(_cmd(workdir, '--config.search.steps=5', '--config.final.epochs=3'))
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'trained with other (or unrecorded) final settings' in p.stdout
  with open(os.path.join(workdir, 'results.json')) as f:
    final = json.load(f)['final']
  assert len(final['candidates']) == 1
  assert 'copied_from' not in final['candidates'][0]


@pytest.mark.slow
def test_final_indices_train_more_candidates_of_a_finished_run(
    reference, tmp_path):
  """final.indices on a finished workdir: those candidates are trained and
  tested too (the chosen one is unchanged), keep their ranks when the
  list changes, and can be loaded by index."""
  workdir = str(tmp_path / 'copy')
  shutil.copytree(reference[0], workdir)
  with open(os.path.join(workdir, 'results.json')) as f:
    before = json.load(f)
  chosen = before['final']['chosen']['index']
  others = [c['index'] for c in before['candidates'] if c['index'] != chosen]
  first, second = others[0], others[-1]
  p = _run(_cmd(workdir, f'--config.final.indices={first}'))
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'training them' not in p.stdout  # the search is not redone
  assert f'training candidate {first} ' in p.stdout
  assert "from the teacher's weights" in p.stdout  # not kept by the search
  p = _run(_cmd(workdir, f'--config.final.indices={second},{first}'))
  assert p.returncode == 0, p.stderr[-3000:]
  assert f'candidate {first} already trained' in p.stdout
  assert f'training candidate {second} ' in p.stdout
  with open(os.path.join(workdir, 'results.json')) as f:
    doc = json.load(f)
  assert doc['final']['chosen'] == before['final']['chosen']
  assert doc['candidates'] == before['candidates']
  entries = {e['index']: e for e in doc['final']['candidates']}
  assert entries[first]['rank'] == 1 and entries[second]['rank'] == 2
  for idx in (first, second):
    assert entries[idx]['requested'] and 0 <= entries[idx]['test_acc'] <= 1
  assert not entries[chosen]['requested']
  from esnac_jax import load_student
  student = load_student(workdir, index=second)
  assert student.index == second
  assert student.test_acc == entries[second]['test_acc']
  with pytest.raises(ValueError, match=r'--config\.final\.indices='):
    load_student(workdir, index=others[1])
  out = str(tmp_path / 'student.jax')
  p = _run([
      sys.executable, '-m', 'esnac_jax.export', f'--workdir={workdir}',
      f'--index={second}', '--format=stablehlo', f'--out={out}'
  ])
  assert p.returncode == 0, p.stderr[-2000:]
  assert f'exported candidate {second} ' in p.stdout
  import jax
  from esnac_jax.data import load_digits
  with open(out, 'rb') as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  images = load_digits().test.images[:7]  # raw, as the dataset gives them
  np.testing.assert_allclose(exported.call(images),
                             student.apply(images),
                             rtol=1e-4,
                             atol=1e-4)


@pytest.mark.slow
def test_target_objective_finds_accurate_students_under_a_limit(
    reference, tmp_path):
  """objective=target: every candidate is within the parameter limit and
  is scored by its accuracy relative to the teacher's."""
  with open(os.path.join(reference[0], 'results.json')) as f:
    limit = sorted(c['params'] for c in json.load(f)['candidates'])[2]
  workdir = str(tmp_path / 'target')
  p = _run(
      _cmd(workdir, '--config.search.objective=target',
           f'--config.constraints.max_params={limit}'))
  assert p.returncode == 0, p.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    doc = json.load(f)
  teacher = doc['teacher']
  for c in doc['candidates']:
    assert c['params'] <= limit
    assert c['reward'] == pytest.approx(c['val_acc'] / teacher['val_acc'])
  chosen = doc['final']['chosen']
  assert chosen['val_reward'] == pytest.approx(chosen['val_acc'] /
                                               teacher['val_acc'])
  assert chosen['test_reward'] == pytest.approx(chosen['test_acc'] /
                                                teacher['test_acc'])


@pytest.mark.slow
def test_stop_hopeless_stops_exactly_the_candidates_that_cannot_win(tmp_path):
  """distill.stop_hopeless in the job: a candidate trains fewer epochs
  exactly when, after some epoch, its reward at its accuracy so far plus
  the largest gain of the earlier full-budget candidates from that epoch
  is below the best reward of the earlier steps."""
  workdir = str(tmp_path / 'stop')
  p = _run(
      _cmd(workdir, '--config.distill.stop_hopeless=True',
           '--config.distill.epochs=3', '--config.search.steps=3',
           '--config.search.candidates_per_step=4'))
  assert p.returncode == 0, p.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    doc = json.load(f)
  cands, t = doc['candidates'], doc['teacher']
  assert [c['epochs'] for c in cands[:4]] == [3] * 4  # nothing to beat yet
  for c in cands[4:]:
    earlier = [e for e in cands if e['step'] < c['step']]
    full = [e for e in earlier if e['epochs'] == 3]
    best = max(e['reward'] for e in earlier)
    per_acc = reward(1.0, t['val_acc'], c['params'], t['params'])
    stopped_after = None
    for done in (1, 2):
      gain = max(e['val_acc'] - max(e['curve'][:done]) for e in full)
      reached = max(c['curve'][:done])
      if per_acc * min(1.0, reached + max(gain, 0.0)) < best - 1e-6:
        stopped_after = done
        break
    assert c['epochs'] == (stopped_after or 3), c
    assert len(c['curve']) == c['epochs']


@pytest.mark.slow
def test_pareto_objective_trains_members_of_the_front(tmp_path):
  """objective=pareto: the final stage trains members of the accuracy-size
  front (not the top rewards), and each candidate keeps the original's
  reward as its ranking."""
  workdir = str(tmp_path / 'pareto')
  p = _run(
      _cmd(workdir, '--config.search.objective=pareto',
           '--config.final.top_n=2'))
  assert p.returncode == 0, p.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    doc = json.load(f)
  front = [c['index'] for c in doc['pareto']['params']]
  trained = [e['index'] for e in doc['final']['candidates']]
  assert len(trained) == min(2, len(front)) and set(trained) <= set(front)
  assert doc['final']['chosen']['index'] in front
  t = doc['teacher']
  for c in doc['candidates']:
    assert c['reward'] == pytest.approx(reward(c['val_acc'], t['val_acc'],
                                               c['params'], t['params']),
                                        rel=1e-5)


@pytest.mark.slow
def test_other_config_in_the_same_workdir_is_refused(reference, tmp_path):
  workdir = str(tmp_path / 'copy')
  shutil.copytree(reference[0], workdir)
  p = _run(_cmd(workdir, '--config.search.esnac.pool_size=16'))
  assert p.returncode == 2
  assert 'search.esnac.pool_size: 32 -> 16' in p.stderr
  assert 'start the search afresh' in p.stderr
  assert 'Traceback' not in p.stderr


def _main_in_process(workdir, *overrides, capsys):
  """The command after its flags (`job.command.run`) for configs/digits.py
  with these `--config.KEY=VALUE` overrides, in this process: (exit code, stderr).

  These errors are raised before any data is loaded or any program
  compiled, so no subprocess is needed to check them (the flag parsing
  itself is checked through the command elsewhere)."""
  from configs import digits
  from esnac_jax.job import command
  config = digits.get_config()
  for flag in TINY + list(overrides):
    key, _, value = flag.removeprefix('--config.').partition('=')
    *parents, leaf = key.split('.')
    section = config
    for p in parents:
      section = section[p]
    old = section[leaf]
    section[leaf] = (value == 'True') if isinstance(old, bool) else \
        type(old)(value)
  with pytest.raises(SystemExit) as exit_info:
    command.run(config, workdir)
  return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize('flag,message', [
    ('--config.teacher.name=alexnet', "unknown teacher 'alexnet'.*known "
     'teachers: mobilenetv2, resnet18, resnet34, shufflenet, vgg19'),
    ('--config.dataset=mnist', "unknown dataset 'mnist'; known datasets: "
     'cifar10, cifar100, digits'),
    ('--config.search.searcher=tpe', "unknown searcher 'tpe'.*known "
     'searchers: esnac, random, evolution'),
    ('--config.search.steps=-2', 'config.search.steps must be >= 1, got -2'),
    ('--config.distill.epochs=0', 'config.distill: epochs must be >= 1'),
    ('--config.search.esnac.acquisition=pi', "unknown acquisition 'pi'"),
    ('--config.distill.path=fast', "unknown distill.path 'fast'"),
    ('--config.distributed.initialize=True '
     '--config.distributed.num_processes=2', 'give coordinator_address, '
     'num_processes and process_id together'),
])
def test_bad_config_values_are_one_line_errors(tmp_path, capsys, flag, message):
  code, err = _main_in_process(str(tmp_path / 'w'),
                               *flag.split(),
                               capsys=capsys)
  assert code == 2, err
  assert len(err.strip().splitlines()) == 1, err
  assert re.search(message, err), err


@pytest.mark.slow
def test_override_of_the_wrong_type(tmp_path):
  p = _run(_cmd(str(tmp_path / 'w'), '--config.search.steps=many'))
  assert p.returncode != 0
  assert 'Traceback' not in p.stderr
  assert 'search.steps' in p.stderr


def test_unwritable_workdir(tmp_path, capsys):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  code, err = _main_in_process(str(blocker / 'w'), capsys=capsys)
  assert code == 2
  assert 'cannot write to --workdir' in err


MOCKED_TFDS_MAIN = ('import sys, tensorflow_datasets as tfds\n'
                    'from absl import app\n'
                    'from esnac_jax import main\n'
                    'with tfds.testing.mock_data(num_examples=120):\n'
                    '  app.run(main.main, argv=sys.argv)\n')


@pytest.mark.slow
def test_any_tfds_dataset_resized_through_main(tmp_path):
  """tfds:NAME with images of many sizes, resized by image_size; the
  teacher is built for the data's channels and classes."""
  cmd = [sys.executable, '-c', MOCKED_TFDS_MAIN] + _cmd(
      str(tmp_path / 'w'), '--config.dataset=tfds:tf_flowers',
      '--config.image_size=10', '--config.final.top_n=1')[3:]
  p = _run(cmd)
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'data: tfds:tf_flowers, 108 train / 12 val / 120 test images' in \
      p.stdout
  assert ('warning: the validation split has 12 images, so every accuracy '
          'the search ranks by moves in steps of 0.0833') in p.stdout
  with open(tmp_path / 'w' / 'results.json') as f:
    doc = json.load(f)
  assert doc['final']['chosen'] is not None
  from esnac_jax import load_student
  student = load_student(str(tmp_path / 'w'))
  assert student.arch.input_shape == (10, 10, 3)
  batch = np.zeros((2, 31, 17, 3), np.uint8)  # resized as the job did
  assert student.apply(batch).shape == (2, 5)
  sizes = [np.zeros((31, 17, 3), np.uint8), np.ones((12, 9, 3), np.uint8)]
  assert student.apply(sizes).shape == (2, 5)  # as TFDS gives them


@pytest.mark.slow
def test_cifar_path_with_mocked_tfds(tmp_path):
  """The CIFAR config through main, with TFDS's mock data (no download)."""
  cmd = [
      sys.executable, '-c', MOCKED_TFDS_MAIN, '--config=configs/resnet18.py',
      f'--workdir={tmp_path / "w"}', '--config.dataset=cifar10',
      '--config.teacher.width=0.0625', '--config.teacher.train.epochs=1',
      '--config.teacher.train.batch_size=12', '--config.search.steps=1',
      '--config.search.candidates_per_step=2',
      '--config.search.esnac.pool_size=16',
      '--config.search.surrogate.hidden=8',
      '--config.search.surrogate.num_layers=1', '--config.distill.epochs=1',
      '--config.distill.batch_size=12', '--config.final.epochs=1',
      '--config.final.batch_size=12', '--config.final.top_n=1',
      '--config.distill.path=masked'
  ]
  p = _run(cmd)
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'data: cifar10, 108 train / 12 val / 120 test images' in p.stdout
  assert 'candidates train on the masked path' in p.stdout
  with open(tmp_path / 'w' / 'results.json') as f:
    doc = json.load(f)
  assert doc['evaluations'] == 2 and doc['teacher']['params'] > 0
  assert doc['final']['chosen'] is not None


KILL_AT = kill_hook.SCRIPT

# Kill points spread over one run (3 steps x 2 candidates, top_n 1), each
# reached by the rerun after the one before (counts restart with each
# process); every kind of checkpoint write is among them.
KILL_POINTS = [
    'save:teacher-progress#1',  # inside the teacher's epoch-1 save
    'log:teacher epoch 1/2#1',  # epoch 1 saved: the rerun resumes
    'save:teacher#1',  # inside the teacher's write
    'log:step 1/3: proposed#1',  # step 1 proposed, not trained
    'save:search#1',  # inside step 1's write
    'json:results.json#1',  # step 1 saved, its results not yet
    'png:reward.png#1',  # step 2 saved, a plot not yet
    'log:step 3/3: proposed#1',  # step 3 proposed
    'save:search#1',  # inside step 3's write
    'log:step 3/3 done#1',  # step 3 saved and reported
    'save:embedding#1',  # inside the embedding's write
    'log:final 1/1: training#1',  # final training started
    'save:final-step3-progress0#1',  # inside its epoch-1 save
    'log:final epoch 1/2#1',  # epoch 1 saved: the rerun resumes
    'save:final-step3#1',  # inside the finalist's write
    'png:reward.png#1',  # final results, a plot not yet
    'log:done in#1',  # everything written
]


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_equals_an_uninterrupted_run(
    reference, tmp_path):
  """A chain of reruns of one workdir, each killed at the next point; the
  last one finishes, and the results equal an uninterrupted run's."""
  workdir = str(tmp_path / 'w')
  log, out, torsos = [], [], 0
  for point in KILL_POINTS:
    env = dict(ENV, KILL_AT=point)
    p = _run([sys.executable, '-c', KILL_AT] + _cmd(workdir)[3:], env=env)
    events = [l[7:] for l in p.stderr.splitlines() if l.startswith('event: ')]
    log.append((point, p.returncode, events[-3:]))
    out.append(p.stdout)
    assert p.returncode == -signal.SIGKILL, (point, p.returncode,
                                             p.stderr[-2000:], log[:-1])
    assert events[-1] == point
    if point.startswith('save:'):
      kind = os.path.join(workdir, point[5:].rpartition('#')[0])
      torsos += any('tmp' in n for n in os.listdir(kind))
  p = _run(_cmd(workdir))
  assert p.returncode == 0, p.stderr[-3000:]
  # Tiny writes may finish before the kill lands; most leave an orbax
  # temporary folder behind, the case a rerun has to clear up.
  assert torsos >= 1
  out = ''.join(out)
  assert 'teacher: resumed after epoch 1/2' in out  # not from epoch 1
  assert 'final: resumed after epoch 1/2' in out
  assert _history(workdir) == _history(reference[0])
  with open(os.path.join(workdir, 'results.json')) as f:
    got = json.load(f)
  with open(os.path.join(reference[0], 'results.json')) as f:
    want = json.load(f)
  keys = ('index', 'val_acc', 'test_acc', 'val_reward', 'test_reward')
  assert {k: got['final']['chosen'][k] for k in keys} == \
      {k: want['final']['chosen'][k] for k in keys}
  assert got['teacher']['val_acc'] == want['teacher']['val_acc']
  # No leftover temporary files of killed writes among the results.
  assert not [n for n in os.listdir(workdir) if '.tmp' in n]
