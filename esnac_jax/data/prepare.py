"""Prepares a TFDS dataset once, in the array_record format the job reads.

  python -m esnac_jax.data.prepare --dataset=cifar10 --data_dir=gs://b/tfds
  esnac-jax-prepare --dataset=cifar100 --data_dir=/mnt/data/tfds

The job never downloads (a run on a machine without internet access must
fail before any work, not hang); this is the step that does, on a machine
that can: a fresh TPU VM, or anywhere once onto a bucket every VM reads.
It then reads the prepared splits back as the job will and prints their
sizes. Any TFDS image-classification dataset works as tfds:NAME.
Datasets that need no preparation (digits, npz:PATH) say so.
"""

from __future__ import annotations

import sys
import time

from esnac_jax.data import DatasetUnavailableError, load_dataset
from esnac_jax.data.specs import DATASETS
from esnac_jax.data.tfds_source import (PREFIX, is_tfds, num_classes,
                                        split_sizes)

TFDS_DATASETS = ('cifar10', 'cifar100')


def prepare(name: str, data_dir: str | None, log=print) -> dict[str, int]:
  """Downloads and prepares `name` (a CIFAR name or tfds:NAME) under
  `data_dir` (TFDS's default when None) unless it is there already;
  returns the split sizes the job will see."""
  if name.startswith('npz:') or name == 'digits':
    why = 'scikit-learn ships it' if name == 'digits' else \
        'the job reads the file itself'
    raise ValueError(f'--dataset={name} needs no preparation: {why}')
  if name not in TFDS_DATASETS and not is_tfds(name):
    raise ValueError(f'--dataset={name!r}: choose one of '
                     f'{", ".join(TFDS_DATASETS)} or tfds:NAME (all '
                     f'datasets: {", ".join(sorted(DATASETS))}, npz:PATH, '
                     'tfds:NAME)')
  import tensorflow_datasets as tfds
  tfds_name = name[len(PREFIX):] if is_tfds(name) else name
  where = data_dir or 'TFDS default'
  try:
    sizes = _sizes(name, data_dir)
    log(f'{name} is already prepared under {where}')
  except DatasetUnavailableError:
    t0 = time.perf_counter()
    log(f'preparing {name} under {where} (array_record; downloads from the '
        'internet)')
    builder = tfds.builder(tfds_name,
                           data_dir=data_dir,
                           file_format='array_record')
    builder.download_and_prepare()
    sizes = _sizes(name, data_dir)
    log(f'prepared {name} in {time.perf_counter() - t0:.0f}s')
  log(f'{name}: {sizes["train"]} train / {sizes["val"]} val / '
      f'{sizes["test"]} test images, {sizes.pop("classes")} classes')
  return sizes


def _sizes(name: str, data_dir: str | None) -> dict[str, int]:
  """The job's split sizes and class count, read back as the job reads."""
  if is_tfds(name):
    sizes = split_sizes(name, data_dir)
    sizes['classes'] = num_classes(name, data_dir)
    return sizes
  ds = load_dataset(name, data_dir)
  return {
      'train': len(ds.train),
      'val': len(ds.val),
      'test': len(ds.test),
      'classes': ds.num_classes
  }


def main(argv: list[str]) -> None:
  from absl import flags
  f = flags.FLAGS
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}')
  try:
    prepare(f.dataset, f.data_dir or None)
  except ValueError as e:
    _fail(str(e))


def _fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def run() -> None:
  """The `esnac-jax-prepare` console script."""
  from absl import app, flags
  flags.DEFINE_string('dataset', 'cifar10', 'A TFDS dataset the job reads.')
  flags.DEFINE_string(
      'data_dir', '', 'Where to prepare it (a folder or gs://...); '
      "give the job the same --config.data_dir. Default: TFDS's.")
  app.run(main)


if __name__ == '__main__':
  run()
