"""Searches for a compressed student of a teacher: the command users run.

  python -m esnac_jax.main --config=configs/digits.py --workdir=/tmp/digits
  python -m esnac_jax.main --config=configs/resnet18.py:faithful \
      --workdir=gs://bucket/r18 --config.search.steps=5

Rerunning the same command resumes where a killed run stopped.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from esnac_jax.data import DatasetUnavailableError
from esnac_jax.search.loop import ConfigMismatchError
from esnac_jax.train import CheckpointError

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/digits.py or '
    'configs/resnet18.py:faithful.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints '
                               'and results; rerun with it to resume.')

# Test hook: SIGKILL this process while the checkpoint of step N is written.
KILL_ENV = 'ESNAC_TEST_KILL_DURING_SAVE'


def fail(message: str) -> None:
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


def main(argv):
  if len(argv) > 1:
    fail(f'unexpected arguments {argv[1:]}; flags look like --workdir=DIR')
  if _CONFIG.value is None:
    fail('--config is required, e.g. --config=configs/digits.py')
  if not _WORKDIR.value:
    fail('--workdir is required, e.g. --workdir=/tmp/digits')
  logging.set_verbosity(logging.WARNING)  # our own progress lines suffice
  check_workdir(_WORKDIR.value)
  dist = _CONFIG.value.get('distributed')
  if dist is not None and dist.initialize:
    from esnac_jax import distributed
    try:
      distributed.initialize(dist.coordinator_address, dist.num_processes,
                             dist.process_id)
    except ValueError as e:
      fail(str(e))
  from esnac_jax import pipeline  # after flags: keeps --help fast
  kill = os.environ.get(KILL_ENV)
  try:
    pipeline.run(_CONFIG.value, _WORKDIR.value,
                 log=lambda s: print(s, flush=True),
                 kill_during_save=int(kill) if kill else None)
  except (ValueError, ConfigMismatchError, CheckpointError,
          DatasetUnavailableError, FileNotFoundError) as e:
    fail(str(e))


if __name__ == '__main__':
  app.run(main)
