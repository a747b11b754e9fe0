"""Epoch-level progress of a long training (the teacher, a finalist), so a
killed run resumes at the epoch after the last save instead of epoch 1.

A save holds the live training state (weights, optimiser moments, step
counter), each network's best-validation weights so far, and the
validation history. Data order depends only on (seed, epoch), so a resumed
training equals an uninterrupted one.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from esnac_jax import checkpoints, paths

FORMAT = 'esnac_jax.progress/1'


class EpochProgress:
  """Saves training progress under `directory` at most every `every_s`
  seconds (0: after every epoch)."""

  def __init__(self, directory: str, every_s: float = 60.0):
    self.directory = paths.join(directory)
    self.every_s = every_s
    self._last = time.monotonic()
    # Why the last restore discarded a save ('' when it did not).
    self.discarded = ''

  def restore(
      self,
      template: dict[str, Any],
      earlier: Sequence[tuple[Any, Callable[[Any], Any]]] = ()
  ) -> tuple[dict, dict] | None:
    """(meta, arrays shaped like `template`) of the newest save, or None.

    `earlier`: (template, convert) pairs for layouts older code saved,
    tried in turn when `template` does not fit; convert(arrays) gives
    arrays shaped like `template`. A save that fits none (damage: a kill
    can only leave an unfinished save, which orbax ignores) is discarded,
    with the reason in `self.discarded`: the training restarts.
    """
    self.discarded = ''
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
        arrays = _restore_any(mngr, step, template, earlier)
    except Exception as e:  # damaged: start this training afresh
      self.discarded = f'{type(e).__name__}: {" ".join(str(e).split())[:200]}'
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


def _restore_any(mngr, step: int, template: Any,
                 earlier: Sequence[tuple[Any, Callable[[Any], Any]]]) -> Any:
  try:
    return checkpoints.restore_tree(mngr, step, 'arrays', template)
  except Exception as first:
    for old, convert in earlier:
      try:
        arrays = checkpoints.restore_tree(mngr, step, 'arrays', old)
      except Exception:
        continue
      return convert(arrays)
    raise first
