"""Datasets: CIFAR-10/100 (TFDS, original split) and the offline digits set."""

from esnac_jax.data.arrays import (Dataset, Split, augment, eval_batches,
                                   train_batches)
from esnac_jax.data.cifar import DatasetUnavailableError, load_cifar
from esnac_jax.data.digits import load_digits
from esnac_jax.data.specs import DATASETS, DatasetSpec, dataset_spec


def load_dataset(name: str, data_dir: str | None = None,
                 process_index: int = 0, process_count: int = 1) -> Dataset:
  """A dataset by name; the training split is this process's shard."""
  dataset_spec(name)  # unknown names raise here
  ds = load_digits() if name == 'digits' else load_cifar(name, data_dir)
  if process_count > 1:
    import dataclasses
    ds = dataclasses.replace(ds, train=ds.train.shard(process_index,
                                                      process_count))
  return ds


__all__ = ['DATASETS', 'Dataset', 'DatasetSpec', 'DatasetUnavailableError',
           'Split', 'augment', 'dataset_spec', 'eval_batches', 'load_cifar',
           'load_dataset', 'load_digits', 'train_batches']
