"""Datasets: CIFAR-10/100 (TFDS, original split), the offline digits set,
your arrays (npz:PATH) and any prepared TFDS dataset (tfds:NAME)."""

from esnac_jax.data.arrays import (DataError, Dataset, Split, augment,
                                   eval_batches, resized, train_batches)
from esnac_jax.data.cifar import load_cifar
from esnac_jax.data.digits import load_digits
from esnac_jax.data.npz import is_npz, load_npz
from esnac_jax.data.specs import DATASETS, DatasetSpec, dataset_spec
from esnac_jax.data.tfds_source import (DatasetUnavailableError, is_tfds,
                                        load_tfds)


def load_dataset(name: str,
                 data_dir: str | None = None,
                 image_size: int = 0) -> Dataset:
  """A dataset by name, whole, its images resized to image_size x
  image_size when that is set: in a multi-process run every process holds
  all of it and feeds its own rows of each minibatch (train_batches'
  `part`)."""
  dataset_spec(name, data_dir, image_size)  # bad names and sizes raise here
  if is_npz(name):
    ds = load_npz(name)
  elif is_tfds(name):
    return load_tfds(name, data_dir, image_size)
  else:
    ds = load_digits() if name == 'digits' else load_cifar(name, data_dir)
  return resized(ds, image_size)


__all__ = [
    'DATASETS', 'DataError', 'Dataset', 'DatasetSpec',
    'DatasetUnavailableError', 'Split', 'augment', 'dataset_spec',
    'eval_batches', 'is_tfds', 'load_cifar', 'load_dataset', 'load_digits',
    'load_npz', 'load_tfds', 'resized', 'train_batches'
]
