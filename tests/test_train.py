"""Teacher training and restore, distillation of candidates, losses, optimisers."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from esnac_jax.arch import get_teacher, sample
from esnac_jax.data import load_digits
from esnac_jax.train import (CheckpointError, LossConfig, OptimConfig,
                             TrainConfig, distill_candidates, final_train,
                             get_teacher_variables, loss_fn, make_optimizer,
                             restore_teacher, accuracy_on_test)
from esnac_jax.train.steps import accuracy
from esnac_jax.data import eval_batches

TEACHER_CFG = TrainConfig(epochs=2,
                          batch_size=64,
                          optim=OptimConfig('sgd', 0.05, schedule='cosine'))


@pytest.fixture(scope='module')
def digits():
  return load_digits()


@pytest.fixture(scope='module')
def teacher(digits, tmp_path_factory):
  arch = get_teacher('resnet18', 10, 1, 0.125, 8)
  workdir = str(tmp_path_factory.mktemp('wd'))
  logs = []
  variables, metrics = get_teacher_variables(arch,
                                             digits,
                                             TEACHER_CFG,
                                             workdir,
                                             0,
                                             log=logs.append)
  return arch, variables, metrics, workdir, logs


@pytest.mark.slow
def test_teacher_trains_and_reports(teacher, digits):
  arch, variables, metrics, _, logs = teacher
  assert metrics['val_acc'] > 0.3  # 2 epochs of a tiny net; chance is 0.1
  assert len(metrics['val_history']) == 2
  assert max(metrics['val_history']) == metrics['val_acc']
  assert abs(
      accuracy_on_test(arch, variables, digits, TEACHER_CFG) -
      metrics['test_acc']) < 1e-9
  assert any('ETA' in line for line in logs)


@pytest.mark.slow
def test_teacher_restores_from_workdir(teacher, digits):
  arch, variables, metrics, workdir, _ = teacher
  logs = []
  again, m2 = get_teacher_variables(arch,
                                    digits,
                                    TEACHER_CFG,
                                    workdir,
                                    0,
                                    log=logs.append)
  assert 'restored' in logs[0] and m2['test_acc'] == metrics['test_acc']
  for a, b in zip(jax.tree_util.tree_leaves(variables),
                  jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_checkpoint_of_another_teacher_is_refused(teacher):
  _, _, _, workdir, _ = teacher
  other = get_teacher('resnet18', 10, 1, 0.25, 8)
  with pytest.raises(CheckpointError, match='for another architecture'):
    restore_teacher(os.path.join(workdir, 'teacher'), other)


@pytest.mark.slow
def test_corrupt_and_missing_checkpoints(teacher, tmp_path):
  import shutil
  arch, _, _, workdir, _ = teacher
  bad = tmp_path / 'teacher'
  shutil.copytree(os.path.join(workdir, 'teacher'), bad)
  for f in glob.glob(str(bad / '**' / '*'), recursive=True):
    if os.path.isfile(f) and 'variables' in f:
      with open(f, 'wb') as fh:
        fh.write(b'garbage')
  with pytest.raises(CheckpointError,
                     match=r'unreadable.*delete .* to train '
                     'the teacher again'):
    restore_teacher(str(bad), arch)
  with pytest.raises(FileNotFoundError, match='no teacher checkpoint'):
    restore_teacher(str(tmp_path / 'nothing'), arch)


@pytest.mark.slow
def test_unfinished_teacher_save_is_discarded_and_retrained(
    teacher, digits, tmp_path):
  """What a kill during the teacher's save leaves (orbax's temporary folder
  only) is discarded: the rerun trains the same teacher again."""
  import shutil
  arch, variables, metrics, workdir, _ = teacher
  wd = tmp_path / 'wd'
  shutil.copytree(os.path.join(workdir, 'teacher', '0'),
                  wd / 'teacher' / '0.orbax-checkpoint-tmp-1764680000')
  logs = []
  again, again_metrics = get_teacher_variables(arch,
                                               digits,
                                               TEACHER_CFG,
                                               str(wd),
                                               0,
                                               log=logs.append)
  assert any('holds no finished save' in s for s in logs)
  assert again_metrics['val_acc'] == metrics['val_acc']
  assert os.listdir(wd / 'teacher') == ['0']
  np.testing.assert_allclose(
      jax.tree_util.tree_leaves(again)[0],
      jax.tree_util.tree_leaves(variables)[0])


def test_class_count_mismatch(digits, tmp_path):
  arch = get_teacher('resnet18', 100, 1, 0.125, 8)
  with pytest.raises(ValueError,
                     match="outputs 100 classes but dataset "
                     "'digits' has 10"):
    get_teacher_variables(arch, digits, TEACHER_CFG, str(tmp_path), 0)


@pytest.mark.slow
def test_distillation_keeps_the_best_epoch(teacher, digits):
  arch, variables, _, _, _ = teacher
  rng = np.random.default_rng(0)
  children = [sample(arch, rng) for _ in range(2)]
  cfg = TrainConfig(epochs=2,
                    batch_size=64,
                    optim=OptimConfig('adam', 1e-3),
                    loss=LossConfig('mse'))
  out = distill_candidates(arch, variables, children, digits, cfg, seed=0)
  for child, r in zip(children, out):
    assert len(r.history) == 2 and r.val_acc == max(r.history)
    assert r.best_epoch == int(np.argmax(r.history))
    acc = accuracy(child, r.variables, eval_batches(digits, digits.val, 256))
    assert abs(acc - r.val_acc) < 1e-9  # the kept weights are that epoch's
  # Final training continues from the search weights, selects on val.
  cfg_final = TrainConfig(epochs=1,
                          batch_size=64,
                          optim=OptimConfig('sgd', 0.01),
                          loss=LossConfig('kl', label_weight=1.0),
                          dtype='bfloat16')
  with pytest.raises(ValueError, match='needs the teacher'):
    final_train(children[0], out[0].variables, digits, cfg_final, 0)
  fin = final_train(children[0],
                    out[0].variables,
                    digits,
                    cfg_final,
                    0,
                    teacher=(arch, variables))
  assert 0.0 <= fin.val_acc <= 1.0


def test_losses():
  logits = jnp.array([[1.0, 2.0, 0.5]])
  t = jnp.array([[0.5, 2.5, 0.0]])
  y = jnp.array([1])
  assert float(loss_fn(LossConfig('mse'), logits, y, t)) == pytest.approx(
      np.mean((np.array(logits) - np.array(t))**2))
  assert float(loss_fn(LossConfig('kl'), t, y, t)) == pytest.approx(0, abs=1e-6)
  ce = float(optax.softmax_cross_entropy_with_integer_labels(logits, y)[0])
  both = LossConfig('kl', temperature=2.0, label_weight=0.5)
  assert float(loss_fn(both, t, y, t)) == pytest.approx(
      0.5 * float(optax.softmax_cross_entropy_with_integer_labels(t, y)[0]),
      rel=1e-5)
  assert float(loss_fn(LossConfig('ce'), logits, y)) == pytest.approx(ce)
  with pytest.raises(ValueError, match="unknown loss 'l1'"):
    LossConfig('l1')
  with pytest.raises(ValueError, match='needs teacher logits'):
    loss_fn(LossConfig('mse'), logits, y)


def test_optimizers():
  cfg = OptimConfig('sgd',
                    0.1,
                    momentum=0.0,
                    weight_decay=0.0,
                    schedule='step',
                    boundaries=(1,),
                    gamma=0.1)
  tx = make_optimizer(cfg, 2, 3)
  assert make_optimizer(cfg, 2, 3) is tx  # cached: jitted steps are reused
  p = jnp.zeros(())
  s = tx.init(p)
  moves = []
  for _ in range(4):
    u, s = tx.update(jnp.ones(()), s, p)
    moves.append(float(u))
  np.testing.assert_allclose(moves, [-0.1, -0.1, -0.01, -0.01], rtol=1e-6)
  with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
    OptimConfig('rmsprop')
  for field, value, message in [
      ('lr', float('nan'), 'lr must be a finite number > 0, got nan'),
      ('momentum', -0.1, r'momentum must be in \[0, 1\), got -0.1'),
      ('weight_decay', float('inf'), 'weight_decay must be a finite number '
       '>= 0, got inf'),
      ('gamma', 0.0, 'gamma must be a finite number > 0, got 0.0'),
      ('boundaries', (2, 2), r'boundaries must be increasing whole epochs '
       r'>= 1, got \(2, 2\)'),
      ('boundaries', (1.5,), 'boundaries must be increasing whole epochs'),
  ]:
    with pytest.raises(ValueError, match=message):
      OptimConfig(**{field: value})
  with pytest.raises(ValueError,
                     match='label_weight must be a finite '
                     'number >= 0, got inf'):
    LossConfig('kl', label_weight=float('inf'))
  with pytest.raises(ValueError,
                     match="dtype must be 'float32' or "
                     "'bfloat16'"):
    TrainConfig(1, 1, OptimConfig(), dtype='float16')


@pytest.mark.parametrize('name', ['adam', 'sgd'])
@pytest.mark.parametrize('schedule', ['constant', 'step', 'cosine'])
def test_optimizers_match_optax_per_parameter(name, schedule):
  from esnac_jax.train.optim import flat_state
  """The flattened update with host-built zero state moves every parameter
  as optax's own per-parameter chain does."""
  cfg = OptimConfig(name, 0.05, schedule=schedule, boundaries=(1,))
  tx = make_optimizer(cfg, 2, 3)
  lr = {
      'constant': 0.05,
      'step': optax.piecewise_constant_schedule(0.05, {2: 0.1}),
      'cosine': optax.cosine_decay_schedule(0.05, 6)
  }[schedule]
  inner = optax.adam(lr) if name == 'adam' else optax.sgd(lr, momentum=0.9)
  ref = optax.chain(optax.add_decayed_weights(5e-4), inner)
  rng = np.random.default_rng(0)
  params = {
      'conv': {
          'kernel': jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
      },
      'bn': {
          'scale': jnp.ones(4),
          'bias': jnp.zeros(4)
      }
  }
  ours, theirs = tx.init(params), ref.init(params)
  assert all(
      isinstance(leaf, jax.Array) and not np.any(leaf)
      for leaf in jax.tree.leaves(ours))
  p, q = params, params
  for _ in range(5):
    g = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype),
                     params)
    u, ours = jax.jit(tx.update)(g, ours, p)
    v, theirs = jax.jit(ref.update)(g, theirs, q)
    p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p, q)
  # The per-parameter state, converted as older saves are on resume, lines
  # up with the flat state element by element.
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
      flat_state(theirs, q), ours)
  # Inside a jitted function the zero state is built in the program.
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b),
               jax.jit(tx.init)(params), tx.init(params))


def test_a_student_step_program_compiles_once(teacher, digits):
  """Each step returns the state in the tree it took, so the jitted step
  reuses its one program (a changed tree would retrace and recompile)."""
  from esnac_jax.models import inherit
  from esnac_jax.train.steps import create_state, train_step_fn
  arch, variables = teacher[0], teacher[1]
  child = sample(arch, np.random.default_rng(3))
  tx = make_optimizer(OptimConfig(), 10, 1)
  state = create_state(inherit(arch, child, variables), tx)
  step = train_step_fn(child, tx, LossConfig('ce'))
  x, y, _ = next(iter(eval_batches(digits, digits.train, 32)))
  before = jax.tree.structure(state)
  events, losses = [], []

  def listen(event, duration, **kwargs):
    if event.startswith('/jax/core/compile/'):
      events.append(event)

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    for _ in range(3):
      state, value = step(state, x, y, None)
      losses.append(float(value))
      if len(losses) == 1:
        assert any('backend_compile' in e for e in events)
        events.clear()
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  assert events == []  # steps 2 and 3 neither traced nor compiled
  assert jax.tree.structure(state) == before
  assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_compiled_programs_are_released():
  """A long search must not keep every child's executable (each holds
  hundreds of memory maps): past PROGRAMS_KEPT distinct Archs, the first
  child's jitted functions are dropped."""
  import gc
  import weakref
  from esnac_jax.arch import SamplerConfig
  from esnac_jax.train import steps
  teacher = get_teacher('resnet18', 10, 1, 0.125, 8)
  rng = np.random.default_rng(0)
  kids = {sample(teacher, rng, SamplerConfig()) for _ in range(40)}
  kids = list(kids)[:steps.PROGRAMS_KEPT + 2]
  assert len(kids) == steps.PROGRAMS_KEPT + 2
  tx = optax.sgd(0.1)
  loss = LossConfig('mse')
  first = [
      weakref.ref(steps.train_step_fn(kids[0], tx, loss)),
      weakref.ref(steps.correct_fn(kids[0]))
  ]
  for kid in kids[1:]:
    steps.train_step_fn(kid, tx, loss)
    steps.correct_fn(kid)
  gc.collect()
  assert [r() for r in first] == [None, None]


def test_programs_released_near_the_map_limit():
  from esnac_jax.train import steps
  # The worker may have run many tests before this one: start clean.
  steps.release_programs(threshold=0.0)
  teacher = get_teacher('resnet18', 10, 1, 0.125, 8)
  steps.correct_fn(teacher)
  used = steps.map_count_fraction()
  assert 0 < used < 1
  assert not steps.release_programs(threshold=min(used + 0.01, 1.0))
  assert steps.correct_fn.cache_info().currsize >= 1
  logs = []
  assert steps.release_programs(threshold=0.0, log=logs.append)
  assert steps.correct_fn.cache_info().currsize == 0
  assert 'of vm.max_map_count' in logs[0]


def _small_net():
  from esnac_jax.arch import INPUT, ArchBuilder
  b = ArchBuilder((8, 8, 1), 'small')
  x = b.relu(b.bn(b.conv(INPUT, 8, 3, padding=1)))
  b.linear(b.flatten(b.avgpool(x, 8, 8)), 10)
  return b.build()


def _whole_and_stopped(digits, directory: str, optim: OptimConfig):
  """A small net's 3-epoch training run whole, then again stopped after
  epoch 2's progress save (as a kill would). Returns (cfg, init, whole):
  init() gives fresh initial variables (training donates its inputs)."""
  from esnac_jax.models import init_variables
  from esnac_jax.train.loop import train_many
  from esnac_jax.train.progress import EpochProgress
  arch = _small_net()
  cfg = TrainConfig(epochs=3, batch_size=64, checkpoint_every_s=0, optim=optim)

  def init():
    return init_variables(arch, jax.random.key(0))

  [whole] = train_many([arch], [init()], digits, cfg, 0)

  class Stop(Exception):
    pass

  def stop_after_epoch_2(line):
    if line.startswith('train epoch 2/3'):
      raise Stop

  with pytest.raises(Stop):
    train_many([arch], [init()],
               digits,
               cfg,
               0,
               log=stop_after_epoch_2,
               progress=EpochProgress(directory, 0))
  return cfg, init, whole


def _resume(digits, directory: str, cfg: TrainConfig, init):
  """The training of _whole_and_stopped run again on its progress: the
  result and the lines it logged."""
  from esnac_jax.train.loop import train_many
  from esnac_jax.train.progress import EpochProgress
  logs = []
  [out] = train_many([_small_net()], [init()],
                     digits,
                     cfg,
                     0,
                     log=logs.append,
                     progress=EpochProgress(directory, 0))
  return out, logs


def test_a_stopped_training_resumes_at_the_next_epoch_and_ends_the_same(
    digits, tmp_path):
  directory = str(tmp_path / 'progress')
  cfg, init, whole = _whole_and_stopped(
      digits, directory, OptimConfig('sgd', 0.05, schedule='cosine'))
  resumed, logs = _resume(digits, directory, cfg, init)
  assert logs[0].startswith('train: resumed after epoch 2/3')
  assert len(logs) == 2  # only epoch 3 was trained
  assert resumed.history == whole.history
  assert resumed.best_epoch == whole.best_epoch
  for a, b in zip(jax.tree_util.tree_leaves(whole.variables),
                  jax.tree_util.tree_leaves(resumed.variables)):
    np.testing.assert_array_equal(a, b)
  # Damaged progress is discarded: the training starts again.
  meta = glob.glob(os.path.join(directory, '*', 'meta', 'metadata'))
  with open(meta[0], 'wb') as f:
    f.write(b'\xff garbage')
  again, logs = _resume(digits, directory, cfg, init)
  assert 'does not fit this training' in logs[0]
  assert len(logs) == 4 and again.history == whole.history


def test_a_save_with_the_per_parameter_optimiser_layout_resumes(
    digits, tmp_path):
  """Progress saved before optimiser states were flat (one moment tree per
  parameter) resumes, converted, and ends as an uninterrupted run."""
  from jax.flatten_util import ravel_pytree
  from esnac_jax.train.progress import EpochProgress
  from esnac_jax.train.steps import create_state
  directory = str(tmp_path / 'progress')
  cfg, init, whole = _whole_and_stopped(
      digits, directory, OptimConfig('adam', 1e-3, schedule='cosine'))
  # Rewrite the save as the earlier code wrote it.
  tx = make_optimizer(cfg.optim, len(digits.train) // 64, 3)
  template = {'live': [create_state(init(), tx)], 'best': [init()]}
  meta, arrays = EpochProgress(directory, 0).restore(template)
  [live] = arrays['live']
  size = ravel_pytree(live.params)[0].shape
  unravel = ravel_pytree(live.params)[1]
  old = live.replace(opt_state=jax.tree.map(
      lambda t: unravel(t) if t.shape == size else t, live.opt_state))
  assert jax.tree.structure(old.opt_state) != jax.tree.structure(live.opt_state)
  meta = {k: v for k, v in meta.items() if k not in ('format', 'epoch')}
  EpochProgress(directory, 0).save(1, meta, {
      'live': [old],
      'best': arrays['best']
  })
  resumed, logs = _resume(digits, directory, cfg, init)
  assert logs[0].startswith('train: resumed after epoch 2/3'), logs
  assert resumed.history == whole.history
  for a, b in zip(jax.tree_util.tree_leaves(whole.variables),
                  jax.tree_util.tree_leaves(resumed.variables)):
    np.testing.assert_array_equal(a, b)


def test_progress_is_saved_on_its_interval_only(tmp_path):
  from esnac_jax.train.progress import EpochProgress
  p = EpochProgress(str(tmp_path / 'p'), every_s=3600)
  assert not p.due(0, 10)  # the interval has not passed
  assert not EpochProgress(str(tmp_path / 'q'), 0).due(9, 10)  # last epoch
  assert EpochProgress(str(tmp_path / 'q'), 0).due(8, 10)
