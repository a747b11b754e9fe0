"""The teacher: train from scratch or restore from the workdir (orbax)."""

from __future__ import annotations

import time
from typing import Callable

import jax

from esnac_jax import checkpoints, paths
from esnac_jax.arch import Arch
from esnac_jax.data import Dataset
from esnac_jax.models import init_variables
from esnac_jax.models.weights import restore_target
from esnac_jax.train.progress import EpochProgress
from esnac_jax.train.loop import (TrainConfig, accuracy_on_split,
                                  accuracy_on_test, check_classes, train_many)


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be used."""


def save_teacher(path: str, arch: Arch, variables: dict, metrics: dict) -> None:
  meta = {'arch': arch.to_dict(), 'metrics': metrics}
  with checkpoints.manager(path, max_to_keep=1) as mngr:
    checkpoints.save(mngr, 0, meta, variables=variables)


def restore_teacher(path: str, arch: Arch) -> tuple[dict, dict]:
  """(variables, metrics) saved for `arch` at `path`.

  Raises FileNotFoundError when there is none and CheckpointError when it is
  unreadable or belongs to another architecture.
  """
  if not paths.path(path).is_dir():
    raise FileNotFoundError(f'no teacher checkpoint at {path}')
  hint = (f'delete {path} to train the teacher again, or use another '
          '--workdir')
  try:
    with checkpoints.manager(path, max_to_keep=1) as mngr:
      step = mngr.latest_step()
      if step is None:
        raise CheckpointError(f'teacher checkpoint at {path} holds no '
                              f'finished save; {hint}')
      meta = checkpoints.restore_meta(mngr, step)
      if Arch.from_dict(meta['arch']) != arch:
        raise CheckpointError(f'the teacher checkpoint at {path} is for '
                              f"another architecture ({meta['arch']['name']}, "
                              f'another width or dataset); {hint}')
      target = restore_target(arch)
      variables = checkpoints.restore_tree(mngr, step, 'variables', target)
  except CheckpointError:
    raise
  except Exception as e:  # orbax raises many kinds for damaged files
    raise CheckpointError(
        f'the teacher checkpoint at {path} is unreadable '
        f'({type(e).__name__}: {str(e)[:200]}); {hint}') from e
  return variables, meta['metrics']


def get_teacher_variables(arch: Arch,
                          ds: Dataset,
                          cfg: TrainConfig,
                          workdir: str,
                          seed: int,
                          log: Callable[[str], None] = print,
                          weights: dict | None = None,
                          weights_from: str = '') -> tuple[dict, dict]:
  """Restores the teacher from workdir/teacher, or takes the trained
  `weights` given (loaded from `weights_from`), or trains it; saves it.

  metrics: val_acc (the best epoch's, which selects the weights), test_acc
  (measured once), best_epoch, epochs, seconds; with given weights the
  accuracies are measured once and epochs is 0.
  """
  check_classes(arch, ds)
  path = paths.join(workdir, 'teacher')
  if paths.path(path).is_dir() and checkpoints.latest_step(path) is None:
    # A run killed while it wrote the teacher: nothing finished to keep.
    log(f'{path} holds no finished save (a run was stopped while writing '
        'it); discarding it and training the teacher again')
    paths.rmtree(path)
  progress = EpochProgress(paths.join(workdir, 'teacher-progress'),
                           cfg.checkpoint_every_s)
  if paths.path(path).is_dir():
    progress.discard()  # left by a kill between the save and its cleanup
    variables, metrics = restore_teacher(path, arch)
    log(f'restored teacher from {path}: val acc {metrics["val_acc"]:.4f}, '
        f'test acc {metrics["test_acc"]:.4f}')
    return variables, metrics
  if weights is not None:
    t0 = time.perf_counter()
    metrics = {
        'val_acc': accuracy_on_split(arch, weights, ds, ds.val, cfg),
        'test_acc': accuracy_on_test(arch, weights, ds, cfg),
        'best_epoch': -1,
        'epochs': 0,
        'val_history': [],
        'weights_from': weights_from
    }
    metrics['seconds'] = time.perf_counter() - t0
    save_teacher(path, arch, weights, metrics)
    log(f'teacher weights from {weights_from}: val acc '
        f'{metrics["val_acc"]:.4f}, test acc {metrics["test_acc"]:.4f} '
        f'(not trained); saved to {path}')
    return weights, metrics
  init = init_variables(arch, jax.random.key(seed))
  [trained] = train_many([arch], [init],
                         ds,
                         cfg,
                         seed,
                         log=log,
                         label='teacher',
                         progress=progress)
  metrics = {
      'val_acc': trained.val_acc,
      'test_acc': accuracy_on_test(arch, trained.variables, ds, cfg),
      'best_epoch': trained.best_epoch,
      'epochs': cfg.epochs,
      'seconds': trained.seconds,
      'val_history': trained.history
  }
  save_teacher(path, arch, trained.variables, metrics)
  progress.discard()
  log(f'teacher trained in {trained.seconds:.0f}s: val acc '
      f'{metrics["val_acc"]:.4f} (epoch {trained.best_epoch + 1}), test acc '
      f'{metrics["test_acc"]:.4f}; saved to {path}')
  return trained.variables, metrics
