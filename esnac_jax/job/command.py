"""What `python -m esnac_jax.main` does once its flags are parsed: check
the workdir, join a multi-process run, run the job, and turn every bad
input into one line on stderr and exit status 2."""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import ml_collections

from esnac_jax import paths
from esnac_jax.data import DatasetUnavailableError
from esnac_jax.job import xla_cache, xla_flags
from esnac_jax.job.loop import ConfigMismatchError
from esnac_jax.train import CheckpointError


def fail(message: str) -> NoReturn:
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def check_workdir(workdir: str) -> None:
  """Writes and removes a probe file, so an unwritable workdir (a missing
  bucket, no credentials, a read-only disk) stops the job now."""
  try:
    paths.check_client(workdir)
    folder = paths.path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / '.write_test'
    probe.write_text('ok')
    probe.unlink()
  except ValueError as e:
    fail(str(e))
  except OSError as e:
    fail(f'cannot write to --workdir={workdir}: {e.strerror or e}')
  except Exception as e:  # object-store clients raise their own kinds
    if not paths.is_remote(workdir):
      raise
    fail(f'cannot write to --workdir={workdir}: {type(e).__name__}: '
         f'{str(e)[:200]}')


def run(config: ml_collections.ConfigDict,
        workdir: str,
        verbose: bool = False) -> None:
  """The job for a parsed config: every input is checked before any data
  is loaded or the workdir is written; a bad one exits with one line
  (`verbose` adds its traceback)."""
  try:
    xla_flags.apply(config.get('xla_cpu_fast_compile', 'auto'),
                    log=lambda s: print(s, flush=True))
    dist = config.get('distributed')
    if dist is not None and dist.initialize:
      from esnac_jax import distributed
      distributed.initialize(dist.coordinator_address, dist.num_processes,
                             dist.process_id)
    from esnac_jax.job import pipeline, validate  # heavy imports
    teacher = config.teacher
    for where in (workdir, config.get('data_dir'),
                  str(config.dataset).removeprefix('npz:'),
                  teacher.get('weights'), teacher.get('arch'),
                  teacher.get('onnx'),
                  config.search.surrogate.get('init_from')):
      paths.check_client(where or '')
    plan = validate.check(config, workdir)
    check_workdir(workdir)
    xla_cache.enable(config.get('compile_cache', 'auto'),
                     log=lambda s: print(s, flush=True))
    pipeline.run(config, workdir, log=lambda s: print(s, flush=True), plan=plan)
  except (ValueError, ConfigMismatchError, CheckpointError,
          DatasetUnavailableError, FileNotFoundError) as e:
    if verbose:
      traceback.print_exc()
    fail(str(e))
