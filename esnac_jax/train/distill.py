"""Scoring candidates: short distillation from the teacher, materialised.

Each child starts from the teacher's weights (weight inheritance), all K
children of a step train in lockstep on the same minibatches with the
teacher's logits computed once per batch, and each keeps its best
validation epoch: that epoch's accuracy is its score and its weights are
the ones kept (the original kept the last epoch's weights).
"""

from __future__ import annotations

from typing import Callable, Sequence

from esnac_jax.arch import Arch
from esnac_jax.data import Dataset
from esnac_jax.models import inherit
from esnac_jax.train.loop import Stop, TrainConfig, Trained, train_many
from esnac_jax.train.progress import EpochProgress


def distill_candidates(teacher: Arch,
                       teacher_vars: dict,
                       children: list[Arch],
                       ds: Dataset,
                       cfg: TrainConfig,
                       seed: int,
                       select: str = 'first',
                       bn_stats: str = 'reset',
                       log: Callable[[str], None] | None = None,
                       rank_weights: Sequence[float] | None = None,
                       stop: Stop | None = None) -> list[Trained]:
  """Distils each child from the teacher; returns best-epoch results.
  `rank_weights`: what successive halving ranks by; `stop`: an early
  stopping rule (both: keep_best_epochs)."""
  inits = [
      inherit(teacher, c, teacher_vars, select, bn_stats) for c in children
  ]
  return train_many(children,
                    inits,
                    ds,
                    cfg,
                    seed,
                    teacher=(teacher, teacher_vars),
                    log=log,
                    label=f'distil x{len(children)}',
                    rank_weights=rank_weights,
                    stop=stop)


def final_train(arch: Arch,
                variables: dict,
                ds: Dataset,
                cfg: TrainConfig,
                seed: int,
                teacher: tuple[Arch, dict] | None = None,
                log: Callable[[str], None] | None = None,
                progress: EpochProgress | None = None) -> Trained:
  """Full training of a chosen child at real size, continuing from
  `variables` (its search-time weights). Selects the epoch on validation;
  the caller evaluates the test split once on the result. With a KD loss in
  `cfg`, pass `teacher`; with `progress`, a killed training resumes."""
  if cfg.loss.kind != 'ce' and teacher is None:
    raise ValueError(f'final training with loss {cfg.loss.kind!r} needs the '
                     'teacher')
  [out] = train_many([arch], [variables],
                     ds,
                     cfg,
                     seed,
                     teacher=teacher,
                     log=log,
                     label='final',
                     progress=progress)
  return out
