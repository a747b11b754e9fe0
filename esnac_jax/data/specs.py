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


def dataset_spec(name: str,
                 data_dir: str | None = None,
                 image_size: int = 0) -> DatasetSpec:
  """A named dataset's spec, or that of the arrays in 'npz:PATH' or the
  prepared TFDS dataset 'tfds:NAME'; its images resized to image_size x
  image_size when that is set."""
  if not isinstance(image_size, int) or image_size < 0:
    raise ValueError(f'config.image_size={image_size!r} must be a whole '
                     'number of pixels (0: as the dataset stores them)')
  if isinstance(name, str) and name.startswith('npz:'):
    from esnac_jax.data.npz import npz_spec
    return npz_spec(name, image_size)
  if isinstance(name, str) and name.startswith('tfds:'):
    from esnac_jax.data.tfds_source import tfds_spec
    return tfds_spec(name, data_dir, image_size)
  if name not in DATASETS:
    raise ValueError(f'unknown dataset {name!r}; known datasets: '
                     f'{", ".join(sorted(DATASETS))}, npz:PATH (your '
                     'arrays) or tfds:NAME (any prepared TFDS image '
                     'classification dataset)')
  spec = DATASETS[name]
  return dataclasses.replace(spec, image_size=image_size or spec.image_size)
