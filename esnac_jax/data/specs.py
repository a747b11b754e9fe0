"""What each supported dataset looks like to a model."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  image_size: int
  channels: int
  num_classes: int
  train_size: int  # images in the training split (batch sizes fit in it)


DATASETS = {
    'cifar10': DatasetSpec('cifar10', 32, 3, 10, 45_000),
    'cifar100': DatasetSpec('cifar100', 32, 3, 100, 45_000),
    # The 8x8 handwritten digits that scikit-learn ships: offline default.
    'digits': DatasetSpec('digits', 8, 1, 10, 1078),
}


def dataset_spec(name: str) -> DatasetSpec:
  """A named dataset's spec, or that of the arrays in 'npz:PATH'."""
  if isinstance(name, str) and name.startswith('npz:'):
    from esnac_jax.data.npz import npz_spec
    return npz_spec(name)
  if name not in DATASETS:
    raise ValueError(f'unknown dataset {name!r}; known datasets: '
                     f'{", ".join(sorted(DATASETS))}, or npz:PATH (your '
                     'arrays)')
  return DATASETS[name]
