"""Searches for a compressed student of a teacher: the command users run.

  python -m esnac_jax.main --config=configs/digits.py --workdir=/tmp/digits
  python -m esnac_jax.main --config=configs/resnet18.py:faithful \
      --workdir=gs://bucket/r18 --config.search.steps=5

Rerunning the same command resumes where a killed run stopped. Every bad
input is one line on stderr and exit status 2, before any work;
--verbose (or ESNAC_JAX_VERBOSE=1) adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from esnac_jax.job import command, config_file

_CONFIG = config_flags.DEFINE_config_file(
    'config',
    None, 'Config file, e.g. configs/digits.py or '
    'configs/resnet18.py:faithful.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints '
    'and results; rerun with it to resume.')
_VERBOSE = flags.DEFINE_boolean(
    'verbose', False, 'Show the Python traceback '
    'behind an error message.')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with config-file and flag mistakes as one line
  and exit status 2 (absl's own parser prints usage and exits 1)."""
  verbose = config_file.verbose_requested(argv)
  try:
    argv = config_file.preflight(argv)
    return flags.FLAGS(argv)
  except Exception as e:  # every parse failure is the user's input
    if verbose:
      traceback.print_exc()
    message = str(e).strip().splitlines()
    config_file.print_error(message[-1] if message else type(e).__name__)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    command.fail(f'unexpected arguments {argv[1:]}; flags look like '
                 '--workdir=DIR')
  if _CONFIG.value is None:
    command.fail('--config is required, e.g. --config=configs/digits.py')
  if not _WORKDIR.value:
    command.fail('--workdir is required, e.g. --workdir=/tmp/digits')
  logging.set_verbosity(logging.WARNING)  # our own progress lines suffice
  try:
    command.run(_CONFIG.value, _WORKDIR.value, verbose=_VERBOSE.value)
  except SystemExit as e:
    if e.code:  # refused: leave before orbax's background threads, torn
      sys.stdout.flush()  # down at exit, print tracebacks after our line
      sys.stderr.flush()
      os._exit(e.code if isinstance(e.code, int) else 2)
    raise


def run() -> None:
  """The `esnac-jax` console script: the same as python -m esnac_jax.main."""
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
