"""Epoch loops shared by teacher, candidate and final training."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from esnac_jax.arch import Arch
from esnac_jax.data import Dataset, eval_batches
from esnac_jax.data.device_feed import FEEDS, TrainFeed
from esnac_jax.train.losses import LossConfig
from esnac_jax.train.optim import (OptimConfig, flat_state, make_optimizer,
                                   per_parameter_state)
from esnac_jax.train.progress import EpochProgress
from esnac_jax.train.steps import (accuracy, create_state, logits_fn,
                                   release_programs, train_step_fn)

# stop(network index, epochs done, best accuracy so far) -> stop it now?
Stop = Callable[[int, int, float], bool]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  epochs: int
  batch_size: int
  optim: OptimConfig
  loss: LossConfig = LossConfig('ce')
  eval_batch_size: int = 256
  dtype: str = 'float32'  # activations: 'float32' or 'bfloat16'
  # Long trainings (teacher, finalists) save their progress this often, so
  # a killed run resumes at the next epoch; 0 saves after every epoch.
  checkpoint_every_s: float = 60.0
  # Successive halving of networks trained together: after each of these
  # epochs only the better half (by best validation accuracy so far) goes on.
  halving: tuple[int, ...] = ()
  # Where training batches are built: 'auto', 'host' or 'device' (see
  # data/device_feed.py).
  feed: str = 'auto'

  def __post_init__(self):
    if self.epochs < 1:
      raise ValueError(f'epochs must be >= 1, got {self.epochs}')
    if self.batch_size < 1:
      raise ValueError(f'batch_size must be >= 1, got {self.batch_size}')
    if not self.checkpoint_every_s >= 0:
      raise ValueError(f'checkpoint_every_s must be >= 0, got '
                       f'{self.checkpoint_every_s}')
    if self.feed not in FEEDS:
      raise ValueError(f'feed must be one of {", ".join(FEEDS)}, got '
                       f'{self.feed!r}')
    if self.dtype not in ('float32', 'bfloat16'):
      raise ValueError(f"dtype must be 'float32' or 'bfloat16', got "
                       f'{self.dtype!r}')
    h = tuple(self.halving)
    if h and self.epochs < 2:
      raise ValueError(f'halving needs epochs >= 2 (networks stop after an '
                       f'epoch before the last), got epochs={self.epochs}')
    if list(h) != sorted(set(h)) or any(not 1 <= e < self.epochs for e in h):
      raise ValueError(f'halving must be increasing epochs within 1..'
                       f'{self.epochs - 1} (after the last epoch nothing is '
                       f'left to save), got {h}')

  @property
  def jnp_dtype(self):
    return jnp.bfloat16 if self.dtype == 'bfloat16' else jnp.float32


@dataclasses.dataclass
class Trained:
  """The best-validation-epoch weights and what they scored."""
  variables: dict
  val_acc: float
  best_epoch: int
  history: list[float]
  seconds: float


def check_classes(arch: Arch, ds: Dataset) -> None:
  if arch.output_shape != (ds.num_classes,):
    raise ValueError(f"the network outputs {arch.output_shape[0]} classes but "
                     f"dataset {ds.name!r} has {ds.num_classes}")
  if arch.input_shape != ds.image_shape:
    raise ValueError(f'the network takes inputs of shape {arch.input_shape} '
                     f'but dataset {ds.name!r} has images of shape '
                     f'{ds.image_shape}')


def train_many(archs: list[Arch],
               init_vars: list[dict],
               ds: Dataset,
               cfg: TrainConfig,
               seed: int,
               teacher: tuple[Arch, dict] | None = None,
               log: Callable[[str], None] | None = None,
               label: str = 'train',
               progress: EpochProgress | None = None,
               rank_weights: Sequence[float] | None = None,
               stop: Stop | None = None) -> list[Trained]:
  """Trains several networks in lockstep on the same minibatches.

  With `teacher`, its logits are computed once per batch and shared. Each
  network keeps its best-validation-epoch weights (not the last epoch's).
  With `progress`, a killed training resumes from its last saved epoch.
  `rank_weights`, `stop`: see keep_best_epochs.
  """
  for a in archs:
    check_classes(a, ds)
  steps = len(ds.train) // cfg.batch_size
  tx = make_optimizer(cfg.optim, steps, cfg.epochs)
  dtype = cfg.jnp_dtype
  states = [create_state(v, tx) for v in init_vars]
  release_programs(log=log)
  fns = [train_step_fn(a, tx, cfg.loss, dtype) for a in archs]
  t_logits = logits_fn(teacher[0], dtype) if teacher else None
  batches = TrainFeed(ds, cfg.feed)

  def train_epoch(epoch: int, active: list[int]) -> None:
    for x, y in batches(cfg.batch_size, seed, epoch):
      tl = t_logits(teacher[1], x) if teacher else None
      for i in active:
        states[i] = fns[i](states[i], x, y, tl)[0]

  def validate(active: list[int]) -> list[float]:
    return [
        accuracy(archs[i], states[i].variables,
                 eval_batches(ds, ds.val, cfg.eval_batch_size), dtype)
        for i in active
    ]

  def weights(improved: list[int]) -> dict[int, dict]:
    return {i: jax.device_get(states[i].variables) for i in improved}

  def set_states(restored: list) -> None:
    nonlocal states
    states = list(restored)

  earlier = []
  if progress is not None:  # saves made before the flat optimiser update
    old = [
        s.replace(opt_state=per_parameter_state(cfg.optim, steps, cfg.epochs,
                                                s.params)) for s in states
    ]
    earlier.append((
        old, lambda live:
        [s.replace(opt_state=flat_state(s.opt_state, s.params)) for s in live]))
  return keep_best_epochs(cfg.epochs, len(archs), train_epoch, validate,
                          weights, log, label, progress,
                          (lambda: states, set_states), cfg.halving,
                          rank_weights, stop, earlier)


def keep_best_epochs(
    epochs: int,
    count: int,
    train_epoch: Callable[[int], None],
    validate: Callable[[], Sequence[float]],
    weights: Callable[[list[int]], dict[int, Any]],
    log: Callable[[str], None] | None = None,
    label: str = 'train',
    progress: EpochProgress | None = None,
    live: tuple[Callable[[], Any], Callable[[Any], None]] | None = None,
    halving: Sequence[int] = (),
    rank_weights: Sequence[float] | None = None,
    stop: Stop | None = None,
    earlier_live: Sequence[tuple[Any, Callable[[Any], Any]]] = ()
) -> list[Trained]:
  """The epoch loop of every training path: `count` networks trained
  together, each keeping its best-validation-epoch weights.

  train_epoch(epoch, active) trains the networks at indices `active` for
  one epoch; validate(active) gives their validation accuracies;
  weights(indices) gives the host copies of the weights of the networks
  whose accuracy just improved. After each epoch in `halving`, only the
  better half of the active networks goes on (successive halving); the
  others keep what they reached. `rank_weights` (one per network) make
  "better" mean a higher weight x best accuracy: the search's reward,
  which is proportional to accuracy for a given child, rather than
  accuracy alone (which would favour the largest children).
  stop(i, epochs_done, best_acc) says whether network i, after
  `epochs_done` epochs (before the last) with this best accuracy so far,
  stops where it is (distill.stop_hopeless). With `progress` and `live` (get and set
  the networks' training state), the loop resumes from the last saved
  epoch and saves as it goes; `earlier_live` holds (template, convert)
  pairs for the live state as older code saved it (EpochProgress.restore).
  """
  if rank_weights is not None and len(rank_weights) != count:
    raise ValueError(f'{len(rank_weights)} rank weights for {count} networks')
  best: list[tuple[float, int, Any] | None] = [None] * count
  history: list[list[float]] = [[] for _ in range(count)]
  active = list(range(count))
  start, earlier_s = 0, 0.0
  if progress is not None:
    template = {
        'live': live[0](),
        'best': list(weights(list(range(count))).values())
    }
    restored = progress.restore(
        template, [(dict(template, live=old),
                    lambda a, convert=convert: dict(a, live=convert(a['live'])))
                   for old, convert in earlier_live])
    if restored is None and progress.discarded and log:
      log(f'{label}: the saved progress in {progress.directory} does not fit '
          f'this training ({progress.discarded}); it starts at epoch 1')
    if restored is not None:
      meta, arrays = restored
      live[1](arrays['live'])
      best = [
          None if b is None else (b[0], b[1], w)
          for b, w in zip(meta['best'], arrays['best'])
      ]
      history, start, earlier_s = (meta['history'], meta['epoch'] + 1,
                                   meta['seconds'])
      active = meta.get('active', active)
      if log:
        log(f'{label}: resumed after epoch {start}/{epochs} from '
            f'{progress.directory}')
  t0 = time.perf_counter() - earlier_s
  for epoch in range(start, epochs):
    if not active:  # every network stopped early
      break
    train_epoch(epoch, active)
    accs = dict(zip(active, validate(active)))
    improved = []
    for i, acc in accs.items():
      history[i].append(acc)
      if best[i] is None or acc > best[i][0]:
        improved.append(i)
    if improved:
      copies = weights(improved)
      for i in improved:
        best[i] = (accs[i], epoch, copies[i])
    if epoch + 1 in halving:
      w = [1.0] * count if rank_weights is None else rank_weights
      active = halved(active, [w[i] * best[i][0] for i in active])
    if stop is not None and epoch + 1 < epochs:
      active = [i for i in active if not stop(i, epoch + 1, best[i][0])]
    if progress is not None and progress.due(epoch, epochs):
      progress.save(
          epoch, {
              'best': [None if b is None else [b[0], b[1]] for b in best],
              'history': history,
              'active': active,
              'seconds': time.perf_counter() - t0
          }, {
              'live':
                  jax.device_get(live[0]()),
              'best': [
                  template['best'][i] if b is None else b[2]
                  for i, b in enumerate(best)
              ]
          })
    if log:
      done = time.perf_counter() - t0
      eta = done / (epoch + 1 - start) * (epochs - epoch - 1) if \
          epoch + 1 > start else 0.0
      shown = ', '.join(f'{accs[i]:.4f}' for i in list(accs)[:8])
      going = f', {len(active)}/{count} go on' if halving or stop else ''
      log(f'{label} epoch {epoch + 1}/{epochs}: val acc {shown}'
          f'{" ..." if len(accs) > 8 else ""}{going} ({done:.0f}s, ETA '
          f'{eta:.0f}s)')
  seconds = time.perf_counter() - t0
  return [Trained(b[2], b[0], b[1], h, seconds) for b, h in zip(best, history)]


def halved(active: list[int], scores: Sequence[float]) -> list[int]:
  """The better half (rounded up) of `active` by score, in index order;
  the earlier index wins a tie."""
  order = sorted(range(len(active)), key=lambda j: (-scores[j], active[j]))
  return sorted(active[j] for j in order[:-(-len(active) // 2)])


def accuracy_on_split(arch: Arch, variables: dict, ds: Dataset, split: Any,
                      cfg: TrainConfig) -> float:
  return accuracy(arch, variables, eval_batches(ds, split, cfg.eval_batch_size),
                  cfg.jnp_dtype)


def accuracy_on_test(arch: Arch, variables: dict, ds: Dataset,
                     cfg: TrainConfig) -> float:
  return accuracy_on_split(arch, variables, ds, ds.test, cfg)
