"""Epoch-level progress of a long training (the teacher, a finalist), so a
killed run resumes at the epoch after the last save instead of epoch 1.

A save holds the live training state (weights, optimiser moments, step
counter), each network's best-validation weights so far, and the
validation history. Data order depends only on (seed, epoch), so a resumed
training equals an uninterrupted one.
"""

from __future__ import annotations

import time
from typing import Any

from esnac_jax import checkpoints, paths

FORMAT = 'esnac_jax.progress/1'


class EpochProgress:
  """Saves training progress under `directory` at most every `every_s`
  seconds (0: after every epoch)."""

  def __init__(self, directory: str, every_s: float = 60.0):
    self.directory = paths.join(directory)
    self.every_s = every_s
    self._last = time.monotonic()

  def restore(self, template: dict[str, Any]) -> tuple[dict, dict] | None:
    """(meta, arrays shaped like `template`) of the newest save, or None.

    An unreadable save (a kill can only leave an unfinished one, which
    orbax ignores; this is damage) is discarded: the training restarts.
    """
    if not paths.path(self.directory).is_dir():
      return None
    try:
      with checkpoints.manager(self.directory, create=False) as mngr:
        step = mngr.latest_step()
        if step is None:
          return None
        meta = checkpoints.restore_meta(mngr, step)
        if meta.get('format') != FORMAT:
          raise ValueError(f'format {meta.get("format")!r}')
        arrays = checkpoints.restore_tree(mngr, step, 'arrays', template)
    except Exception:  # damaged: start this training afresh
      self.discard()
      return None
    return meta, arrays

  def due(self, epoch: int, epochs: int) -> bool:
    """Whether to save after `epoch`: never after the last (the caller
    saves the result), else once `every_s` has passed."""
    return epoch + 1 < epochs and \
        time.monotonic() - self._last >= self.every_s

  def save(self, epoch: int, meta: dict[str, Any], arrays: Any) -> None:
    with checkpoints.manager(self.directory, max_to_keep=1) as mngr:
      checkpoints.save(mngr,
                       epoch,
                       dict(meta, format=FORMAT, epoch=epoch),
                       arrays=arrays)
    self._last = time.monotonic()

  def discard(self) -> None:
    """Removes the saved progress (the training's result is saved)."""
    paths.rmtree(self.directory)
