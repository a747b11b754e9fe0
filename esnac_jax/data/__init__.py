"""Datasets: CIFAR-10/100 (TFDS, original split) and the offline digits set."""

from esnac_jax.data.arrays import (Dataset, Split, augment, eval_batches,
                                   train_batches)
from esnac_jax.data.cifar import DatasetUnavailableError, load_cifar
from esnac_jax.data.digits import load_digits
from esnac_jax.data.npz import DataError, is_npz, load_npz
from esnac_jax.data.specs import DATASETS, DatasetSpec, dataset_spec


def load_dataset(name: str, data_dir: str | None = None) -> Dataset:
  """A dataset by name, whole: in a multi-process run every process holds
  all of it and feeds its own rows of each minibatch (train_batches'
  `part`)."""
  if is_npz(name):
    return load_npz(name)
  dataset_spec(name)  # unknown names raise here
  return load_digits() if name == 'digits' else load_cifar(name, data_dir)


__all__ = [
    'DATASETS', 'DataError', 'Dataset', 'DatasetSpec',
    'DatasetUnavailableError', 'Split', 'augment', 'dataset_spec',
    'eval_batches', 'load_cifar', 'load_dataset', 'load_digits', 'load_npz',
    'train_batches'
]
