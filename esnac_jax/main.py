"""Searches for a compressed student of a teacher: the command users run.

  python -m esnac_jax.main --config=configs/digits.py --workdir=/tmp/digits
  python -m esnac_jax.main --config=configs/resnet18.py:faithful \
      --workdir=gs://bucket/r18 --config.search.steps=5

Rerunning the same command resumes where a killed run stopped.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from esnac_jax.job import command

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/digits.py or '
    'configs/resnet18.py:faithful.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints '
                               'and results; rerun with it to resume.')


def main(argv):
  if len(argv) > 1:
    command.fail(f'unexpected arguments {argv[1:]}; flags look like '
                 '--workdir=DIR')
  if _CONFIG.value is None:
    command.fail('--config is required, e.g. --config=configs/digits.py')
  if not _WORKDIR.value:
    command.fail('--workdir is required, e.g. --workdir=/tmp/digits')
  logging.set_verbosity(logging.WARNING)  # our own progress lines suffice
  command.run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
