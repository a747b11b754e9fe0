"""Scores a batch of candidates: distillation, then the reward."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax

from esnac_jax.arch import Arch
from esnac_jax.data import Dataset
from esnac_jax.search.fidelity import max_gains
from esnac_jax.search.record import Record, Result
from esnac_jax.search.reward import Constraints
from esnac_jax.models.masked import check_maskable
from esnac_jax.train import TrainConfig, distill_candidates
from esnac_jax.train.loop import Stop
from esnac_jax.train.masked import candidate_mesh, distill_masked

PATHS = ('auto', 'materialised', 'masked', 'masked_vmap')

# Above this much work in one float32 training step of the teacher, one
# child already keeps an accelerator busy, so the masked path's whole-teacher
# work per candidate costs more than the compiles it saves (see
# resolve_path). ResNet-18 at CIFAR size, batch 128: ~430 GFLOP.
BUSY_STEP_FLOPS = 1e11


def resolve_path(path: str,
                 teacher: Arch,
                 select: str,
                 backend: str,
                 dtype: str = 'float32',
                 batch_size: int = 128) -> str:
  """'auto' follows bench.evaluate's measurements. On CPUs: the
  materialised path (each child runs at its own, much smaller size; the
  masked path runs the whole teacher per candidate, 7x slower per step for
  the digits teacher, which outweighs its saved compiles beyond ~4
  epochs). On accelerators: the masked path vmapped over the K candidates
  (one program per teacher and K), where it applies -- except in float32
  when a teacher training step exceeds BUSY_STEP_FLOPS, where the
  materialised path wins (H200, ResNet-18 at CIFAR size, batch 128: 121
  candidates/hour with its per-child compiles against 81 masked at K=8;
  in bfloat16 it is 97 against 171, and on the digits teacher 671 against
  22,226)."""
  if path not in PATHS:
    raise ValueError(f'unknown distill.path {path!r}; use one of {PATHS}')
  if path in ('masked', 'masked_vmap'):
    check_maskable(teacher)
    if select != 'first':
      raise ValueError(f"distill.path={path!r} keeps the first channels; "
                       f"distill.select={select!r} needs the materialised "
                       'path')
    return path
  if path == 'materialised' or backend == 'cpu':
    return 'materialised'
  try:
    check_maskable(teacher)
  except ValueError:
    return 'materialised'
  if select != 'first':
    return 'materialised'
  if dtype == 'float32' and 3 * teacher.flops * batch_size > BUSY_STEP_FLOPS:
    return 'materialised'
  return 'masked_vmap'


@dataclasses.dataclass
class Evaluator:
  """Distils children from the teacher (weight inheritance, lockstep
  minibatches) and scores each by its best validation epoch."""
  teacher: Arch
  teacher_vars: dict
  teacher_val_acc: float
  dataset: Dataset
  train: TrainConfig
  constraints: Constraints = Constraints()
  select: str = 'first'
  bn_stats: str = 'reset'
  path: str = 'materialised'  # a resolved path (see resolve_path)
  stop_hopeless: bool = False  # see hopeless_rule

  def __call__(
      self,
      archs: list[Arch],
      seed: int,
      log: Callable[[str], None] | None = None,
      history: Sequence[Record] = ()
  ) -> tuple[list[Result], list[dict]]:
    """Results and the kept (best-epoch) weights, one per arch. `history`:
    the search's records so far (for stop_hopeless)."""
    rank = self.rank_weights(archs)
    stop = self.hopeless_rule(archs, history) if self.stop_hopeless else None
    if self.path == 'materialised':
      trained = distill_candidates(self.teacher, self.teacher_vars, archs,
                                   self.dataset, self.train, seed, self.select,
                                   self.bn_stats, log, rank, stop)
    else:
      vmap = self.path == 'masked_vmap'
      mesh = candidate_mesh() if vmap and jax.device_count() > 1 else None
      trained = distill_masked(self.teacher,
                               self.teacher_vars,
                               archs,
                               self.dataset,
                               self.train,
                               seed,
                               vmap=vmap,
                               bn_stats=self.bn_stats,
                               log=log,
                               mesh=mesh,
                               rank_weights=rank,
                               stop=stop)
    results = [
        Result(
            t.val_acc,
            self.constraints.reward(t.val_acc, self.teacher_val_acc,
                                    a.num_params, self.teacher.num_params),
            t.best_epoch, t.seconds, len(t.history),
            tuple(float(v) for v in t.history)) for a, t in zip(archs, trained)
    ]
    return results, [t.variables for t in trained]

  def rank_weights(self, archs: list[Arch]) -> list[float] | None:
    """What successive halving ranks a step's candidates by: their reward
    (each child's reward per unit of accuracy), so a small child that is
    ahead on reward goes on even when a larger one is more accurate. With
    a pareto objective (every size counts) it ranks by accuracy."""
    if not self.train.halving or self.constraints.pareto_axis is not None:
      return None
    return [
        self.constraints.reward(1.0, self.teacher_val_acc, a.num_params,
                                self.teacher.num_params) for a in archs
    ]

  def hopeless_inputs(
      self, history: Sequence[Record]) -> tuple[float, dict[int, float]] | None:
    """What hopeless_rule reads from the history: the best score and the
    largest gain from each epoch on; None when it stops nothing."""
    gains = max_gains(history)
    if not gains:
      return None
    return max(r.reward for r in history), gains

  def hopeless_rule(self, archs: list[Arch],
                    history: Sequence[Record]) -> Stop | None:
    """Early stopping of the candidates that, by the learning curves seen
    so far, cannot win: after epoch e a candidate stops when its score at
    the accuracy it has reached plus the largest gain from epoch e on that
    any full-budget candidate of `history` made (fidelity.max_gains),
    capped at 1, is below the best score in `history`. None (no stopping)
    before enough full learning curves exist."""
    inputs = self.hopeless_inputs(history)
    if inputs is None:
      return None
    best, gains = inputs
    teacher_acc, teacher_params = (self.teacher_val_acc,
                                   self.teacher.num_params)

    def stop(i: int, done: int, acc: float) -> bool:
      if done not in gains:
        return False
      bound = self.constraints.reward(min(1.0, acc + max(gains[done], 0.0)),
                                      teacher_acc, archs[i].num_params,
                                      teacher_params)
      return bound < best

    return stop
