"""One way to write and read the project's orbax checkpoints.

Every checkpoint here is a CheckpointManager directory whose steps each
hold a JSON `meta` and any number of named array trees (teacher
variables, search state arrays, finalists' weights, a fitted LSTM).
Orbax writes a step into a temporary directory and renames it when
complete, so a killed write never leaves a half step behind.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from typing import Any, Iterator

import orbax.checkpoint as ocp

from esnac_jax import paths


def manager(path: paths.PathLike,
            max_to_keep: int | None = None,
            create: bool = True) -> ocp.CheckpointManager:
  """The manager of the checkpoint directory `path` (created if absent,
  unless `create` is False)."""
  return ocp.CheckpointManager(paths.path(path),
                               options=ocp.CheckpointManagerOptions(
                                   max_to_keep=max_to_keep, create=create))


def latest_step(path: paths.PathLike) -> int | None:
  """The newest finished step under `path` (unfinished, temporary saves of
  a killed write do not count), or None."""
  with manager(path) as mngr:
    return mngr.latest_step()


def save(mngr: ocp.CheckpointManager, step: int, meta: dict[str, Any],
         **trees: Any) -> None:
  """Writes step `step`: `meta` as JSON and each named tree; returns once
  the step is complete on disk."""
  items = {'meta': ocp.args.JsonSave(meta)}
  items.update({k: ocp.args.StandardSave(v) for k, v in trees.items()})
  mngr.save(step, args=ocp.args.Composite(**items))
  mngr.wait_until_finished()


def restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  return mngr.restore(
      step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']


def restore_tree(mngr: ocp.CheckpointManager,
                 step: int,
                 name: str,
                 target: Any = None) -> Any:
  """The tree `name` of step `step`, shaped like `target` when given."""
  with _failure_noise_held():
    return mngr.restore(step,
                        args=ocp.args.Composite(
                            **{name: ocp.args.StandardRestore(target)}))[name]


@contextlib.contextmanager
def _failure_noise_held(settle_s: float = 0.3) -> Iterator[None]:
  """When a damaged file fails a restore, tensorstore's reader threads keep
  calling into orbax's closed event loop for a moment and print a
  traceback each, after the error that matters. Output to stderr (fd 2)
  during a restore is held back: shown afterwards if it succeeds, dropped
  (after letting those threads settle) if it fails."""
  sys.stderr.flush()
  saved = os.dup(2)
  failed = False
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      yield
    except BaseException:
      failed = True
      time.sleep(settle_s)
      raise
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      if not failed:
        held.seek(0)
        text = held.read()
        if text:
          os.write(2, text)
