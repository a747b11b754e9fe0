"""What `python -m esnac_jax.main` does once its flags are parsed: check
the workdir, join a multi-process run, run the job, and turn every bad
input into one line on stderr and exit status 2."""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import ml_collections

from esnac_jax.data import DatasetUnavailableError
from esnac_jax.job.loop import ConfigMismatchError
from esnac_jax.train import CheckpointError


def fail(message: str) -> NoReturn:
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def check_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, '.write_test')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    fail(f'cannot write to --workdir={workdir}: {e.strerror or e}')


def run(config: ml_collections.ConfigDict,
        workdir: str,
        verbose: bool = False) -> None:
  """The job for a parsed config: every input is checked before any data
  is loaded or the workdir is written; a bad one exits with one line
  (`verbose` adds its traceback)."""
  try:
    dist = config.get('distributed')
    if dist is not None and dist.initialize:
      from esnac_jax import distributed
      distributed.initialize(dist.coordinator_address, dist.num_processes,
                             dist.process_id)
    from esnac_jax.job import pipeline, validate  # heavy imports
    plan = validate.check(config, workdir)
    check_workdir(workdir)
    pipeline.run(config, workdir, log=lambda s: print(s, flush=True), plan=plan)
  except (ValueError, ConfigMismatchError, CheckpointError,
          DatasetUnavailableError, FileNotFoundError) as e:
    if verbose:
      traceback.print_exc()
    fail(str(e))
