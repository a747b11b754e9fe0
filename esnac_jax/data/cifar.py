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

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32) * 255.0
STD = np.array([0.2023, 0.1994, 0.2010], np.float32) * 255.0
NUM_TRAIN = 45_000


class DatasetUnavailableError(RuntimeError):
  """The dataset is not prepared locally (and we never download)."""


def _prepare_hint(name: str, data_dir: str | None) -> str:
  where = data_dir or '~/tensorflow_datasets'
  return (f'{name} is not prepared under data_dir={where!r} in the '
          'array_record format, and esnac_jax does not download at run time. '
          'On a machine with internet access run:\n'
          f'  python -m esnac_jax.data.prepare --dataset={name} '
          '--data_dir=DIR\n'
          '(DIR may be gs://bucket/tfds), then copy DIR to this machine '
          'unless it is a bucket, and pass --config.data_dir=DIR '
          '(or use --config.dataset=digits, which ships with scikit-learn).')


def _read(name: str, split: str, data_dir: str | None):
  import tensorflow_datasets as tfds
  try:
    src = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several kinds, most misleading
    raise DatasetUnavailableError(_prepare_hint(name, data_dir)) from e
  n = len(src)
  first = src[0]
  images = np.empty((n,) + tuple(first['image'].shape), np.uint8)
  labels = np.empty(n, np.int32)
  for i in range(n):  # item by item: batch fetch fails under mock_data
    ex = src[i]
    images[i] = ex['image']
    labels[i] = ex['label']
  return images, labels


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
