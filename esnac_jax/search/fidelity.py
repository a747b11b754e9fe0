"""What the surrogate fits on when candidates trained for different budgets.

With successive halving (`distill.halving`) most of a step's candidates
stop after one or two epochs, and their best accuracy so far understates
what the full budget would have reached. A GP fitted on those as equals of
full-budget scores learns that every cheaply sampled region is poor.
Modes (`search.esnac.fidelity`):
  raw          every record's own score (the original);
  full_only    only the candidates that trained the full budget;
  extrapolate  a stopped candidate's accuracy plus the mean gain the
               full-budget candidates made from that epoch to their end.
Without halving every candidate trains the full budget and all three are
the same.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from esnac_jax.search.record import Record

MODES = ('raw', 'extrapolate', 'full_only')


def full_budget(records: Sequence[Record]) -> int:
  """The most distillation epochs any record trained (0: unknown)."""
  return max((r.epochs for r in records), default=0)


def epoch_gains(records: Sequence[Record]) -> dict[int, float]:
  """{e: mean over full-budget records of (final accuracy - best accuracy
  within the first e epochs)}, for every e below the full budget; empty
  when no full-budget record has its learning curve."""
  full = full_budget(records)
  done = [r for r in records if r.epochs == full and len(r.curve) == full]
  if not done:
    return {}
  return {
      e: float(np.mean([r.val_acc - max(r.curve[:e]) for r in done]))
      for e in range(1, full)
  }


def max_gains(records: Sequence[Record],
              min_curves: int = 4) -> dict[int, float]:
  """{e: the largest gain any full-budget record made from its best
  accuracy within the first e epochs to its final one}, for every e below
  the full budget: an optimistic bound on how far a candidate can still
  climb (distill.stop_hopeless). Empty below `min_curves` such records."""
  full = full_budget(records)
  done = [r for r in records if r.epochs == full and len(r.curve) == full]
  if len(done) < max(min_curves, 1):
    return {}
  return {
      e: float(max(r.val_acc - max(r.curve[:e]) for r in done))
      for e in range(1, full)
  }


def fit_targets(records: Sequence[Record],
                mode: str,
                accuracy: bool = False) -> tuple[list[int], np.ndarray]:
  """The records the surrogate fits on (indices) and their targets: the
  reward, or the validation accuracy when `accuracy`, corrected as `mode`
  says for records that stopped early."""
  if mode not in MODES:
    raise ValueError(f'unknown fidelity mode {mode!r}; use one of {MODES}')
  full = full_budget(records)
  stopped = [0 < r.epochs < full for r in records]
  if mode == 'full_only':
    idx = [i for i, s in enumerate(stopped) if not s]
  else:
    idx = list(range(len(records)))
  values = [r.val_acc if accuracy else r.reward for r in records]
  gains = epoch_gains(records) if mode == 'extrapolate' else {}
  for i, r in enumerate(records):
    if stopped[i] and r.epochs in gains and r.val_acc > 0:
      acc = min(1.0, r.val_acc + max(0.0, gains[r.epochs]))
      # The reward is proportional to accuracy for a given child.
      values[i] = acc if accuracy else r.reward * acc / r.val_acc
  return idx, np.array([values[i] for i in idx], np.float32)
