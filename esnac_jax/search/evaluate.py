"""Scores a batch of candidates: distillation, then the reward."""

from __future__ import annotations

import dataclasses
from typing import Callable

from esnac_jax.arch import Arch
from esnac_jax.data import Dataset
from esnac_jax.search.record import Result
from esnac_jax.search.reward import Constraints
from esnac_jax.train import TrainConfig, distill_candidates


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

  def __call__(self, archs: list[Arch], seed: int,
               log: Callable[[str], None] | None = None
               ) -> tuple[list[Result], list[dict]]:
    """Results and the kept (best-epoch) weights, one per arch."""
    trained = distill_candidates(self.teacher, self.teacher_vars, archs,
                                 self.dataset, self.train, seed, self.select,
                                 self.bn_stats, log)
    results = [Result(t.val_acc,
                      self.constraints.reward(t.val_acc, self.teacher_val_acc,
                                              a.num_params,
                                              self.teacher.num_params),
                      t.best_epoch, t.seconds)
               for a, t in zip(archs, trained)]
    return results, [t.variables for t in trained]
