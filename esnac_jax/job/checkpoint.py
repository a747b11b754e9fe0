"""The search state on disk: one orbax checkpoint per finished step.

Each save holds `meta` (JSON: config, step, searcher history and RNG
counter, timing) and, when there are any, `arrays` (the surrogate's fitted
parameters and the kept candidates' weights). Orbax writes into a temporary
directory and renames it when complete, so a process killed mid-write
leaves the previous step intact; the last two steps are kept, and a
damaged latest step falls back to the one before.
"""

from __future__ import annotations

from typing import Any, Callable

from esnac_jax import checkpoints, paths
from esnac_jax.train import CheckpointError

FORMAT = 'esnac_jax.search/1'


class SearchCheckpointer:
  """Saves and restores the search state under `directory`."""

  def __init__(self, directory: str):
    self.directory = paths.join(directory)
    self._mngr = checkpoints.manager(self.directory, max_to_keep=2)

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, meta: dict[str, Any], arrays: Any = None) -> None:
    meta = dict(meta, format=FORMAT, step=step, has_arrays=arrays is not None)
    trees = {} if arrays is None else {'arrays': arrays}
    checkpoints.save(self._mngr, step, meta, **trees)

  @staticmethod
  def saved_config(directory: str) -> dict[str, Any] | None:
    """The config of the newest readable step under `directory` (None if
    there is none), read without restoring any arrays or creating
    anything."""
    with checkpoints.manager(directory, create=False) as mngr:
      for step in sorted(mngr.all_steps(), reverse=True):
        try:
          return checkpoints.restore_meta(mngr, step)['config']
        except Exception:  # damaged: restore() falls back or names it
          continue
    return None

  def restore(
      self,
      log: Callable[[str], None] = print) -> tuple[dict[str, Any], Any] | None:
    """(meta, arrays) of the newest readable step, or None if none exists."""
    steps = sorted(self._mngr.all_steps(), reverse=True)
    errors = []
    for step in steps:
      try:
        out = self._restore(step)
      except Exception as e:  # orbax raises many kinds for damaged files
        errors.append(f'step {step}: {type(e).__name__}: {str(e)[:200]}')
        continue
      if errors:  # move damaged newer steps aside so they can be redone
        self._set_aside(steps[:len(errors)], log)
      return out
    if errors:
      raise CheckpointError(
          f'no readable search checkpoint in {self.directory} '
          f'({"; ".join(errors)}); delete that directory to start the search '
          'afresh (the teacher checkpoint is kept)')
    return None

  def _restore(self, step: int) -> tuple[dict[str, Any], Any]:
    meta = checkpoints.restore_meta(self._mngr, step)
    if meta.get('format') != FORMAT:
      raise CheckpointError(f'unknown search state format '
                            f'{meta.get("format")!r}')
    arrays = None
    if meta['has_arrays']:
      arrays = checkpoints.restore_tree(self._mngr, step, 'arrays')
    return meta, arrays

  def _set_aside(self, steps: list[int], log: Callable[[str], None]) -> None:
    self._mngr.close()
    for step in steps:
      src = paths.path(self.directory) / str(step)
      dst = f'{self.directory}.damaged-step{step}'
      src.rename(dst)
      log(f'warning: search checkpoint step {step} was unreadable; moved it '
          f'to {dst} and resumed from the step before')
    self._mngr = checkpoints.manager(self.directory, max_to_keep=2)

  def close(self) -> None:
    self._mngr.close()
