"""CIFAR-10/100 from TFDS with the original ESNAC split.

Training: the first 45,000 images of TFDS 'train'; validation: the last
5,000; test: TFDS 'test'. Augmentation: 4-pixel padded random crop and
horizontal flip; normalisation with the original's constants (the same for
both datasets). Reads through `tfds.data_source` (array_record random access,
no TensorFlow needed) and never downloads: a missing dataset is an error
that says how to prepare it.
"""

from __future__ import annotations

import numpy as np

from esnac_jax.data.arrays import Dataset, Split
from esnac_jax.data.tfds_source import read_split, source

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32) * 255.0
STD = np.array([0.2023, 0.1994, 0.2010], np.float32) * 255.0
NUM_TRAIN = 45_000


def _read(name: str, split: str, data_dir: str | None):
  return read_split(source(name, split, data_dir, name), shown=name)


def load_cifar(name: str,
               data_dir: str | None = None,
               num_train: int = NUM_TRAIN) -> Dataset:
  """CIFAR-10 or CIFAR-100 as in the original (45K train / 5K val / test)."""
  if name not in ('cifar10', 'cifar100'):
    raise ValueError(f'not a CIFAR dataset: {name!r}')
  images, labels = _read(name, 'train', data_dir)
  if len(labels) <= num_train:
    # Small (e.g. mocked) copies: keep the same proportions.
    num_train = int(round(len(labels) * 0.9))
  train = Split(images[:num_train], labels[:num_train])
  val = Split(images[num_train:], labels[num_train:])
  test = Split(*_read(name, 'test', data_dir))
  classes = 10 if name == 'cifar10' else 100
  return Dataset(name,
                 train,
                 val,
                 test,
                 MEAN,
                 STD,
                 classes,
                 augment_crop=4,
                 augment_flip=True)
