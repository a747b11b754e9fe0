"""scikit-learn's 8x8 handwritten digits: the offline default.

1,797 real images ship inside scikit-learn, so this needs no download. The
split is fixed and stratified: 60% train, 20% validation, 20% test.
"""

from __future__ import annotations

import numpy as np

from esnac_jax.data.arrays import Dataset, Split

SPLIT_SEED = 0


def load_digits() -> Dataset:
  from sklearn.datasets import load_digits as sk_load
  from sklearn.model_selection import train_test_split
  d = sk_load()
  images = (d.images.astype(np.float32) / 16.0)[..., None]
  labels = d.target.astype(np.int32)
  idx = np.arange(len(labels))
  train, rest = train_test_split(idx,
                                 test_size=0.4,
                                 stratify=labels,
                                 random_state=SPLIT_SEED)
  val, test = train_test_split(rest,
                               test_size=0.5,
                               stratify=labels[rest],
                               random_state=SPLIT_SEED)
  tr = Split(images[train], labels[train])
  mean = tr.images.mean(axis=(0, 1, 2))
  std = tr.images.std(axis=(0, 1, 2))
  return Dataset('digits', tr, Split(images[val], labels[val]),
                 Split(images[test], labels[test]), mean, std, 10)
