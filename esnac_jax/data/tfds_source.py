"""Any TFDS image-classification dataset: `--config.dataset=tfds:NAME`.

NAME is what `tfds.builder` takes (`mnist`, `tf_flowers`,
`cifar10_corrupted/brightness_1:1.0.0`). The dataset must be prepared as
array_record under data_dir (`esnac-jax-prepare --dataset=tfds:NAME`); the
job never downloads. Splits: TFDS's 'train', its 'validation' (or 'valid',
'val') and 'test'; a missing validation or test split is a fixed, seeded
tenth carved from train. Images: the (image, label) pair of the dataset's
supervised keys, resized to `image_size` when it is set (required when the
dataset's images differ in size). Normalisation: per-channel mean and std
of the training split; no augmentation (a flip is wrong for some data).
"""

from __future__ import annotations

import numpy as np

from esnac_jax.data.arrays import (DataError, Dataset, Split, carve,
                                   normalisation, resize_images)
from esnac_jax.data.specs import DatasetSpec

PREFIX = 'tfds:'
VAL_SPLITS = ('validation', 'valid', 'val')


class DatasetUnavailableError(RuntimeError):
  """The dataset is not prepared locally (and we never download)."""


def is_tfds(name: str) -> bool:
  return isinstance(name, str) and name.startswith(PREFIX)


def prepare_hint(name: str, data_dir: str | None) -> str:
  where = data_dir or '~/tensorflow_datasets'
  return (f'{name} is not prepared under data_dir={where!r} in the '
          'array_record format, and esnac_jax does not download at run time. '
          'On a machine with internet access run:\n'
          f'  python -m esnac_jax.data.prepare --dataset={name} '
          '--data_dir=DIR\n'
          '(DIR may be gs://bucket/tfds), then copy DIR to this machine '
          'unless it is a bucket, and pass --config.data_dir=DIR '
          '(or use --config.dataset=digits, which ships with scikit-learn).')


def source(tfds_name: str, split: str, data_dir: str | None, shown: str):
  """TFDS's random-access source of a prepared split."""
  import tensorflow_datasets as tfds
  try:
    return tfds.data_source(tfds_name,
                            split=split,
                            data_dir=data_dir,
                            download=False)
  except Exception as e:  # tfds raises several kinds, most misleading
    raise DatasetUnavailableError(prepare_hint(shown, data_dir)) from e


def read_split(src,
               keys: tuple[str, str] = ('image', 'label'),
               image_size: int = 0,
               shown: str = '') -> tuple[np.ndarray, np.ndarray]:
  """All of a source's (image, label) pairs as arrays, each image resized
  to image_size x image_size when that is set."""
  image_key, label_key = keys
  n = len(src)
  if n == 0:
    raise DataError(f'{shown}: a split is empty')
  images, labels = None, np.empty(n, np.int32)
  for i in range(n):  # item by item: batch fetch fails under mock_data
    ex = src[i]
    image = np.asarray(ex[image_key])
    if image.ndim == 2:
      image = image[..., None]
    if image_size:
      image = resize_images(image[None], image_size)[0]
    if images is None:
      images = np.empty((n,) + image.shape, image.dtype)
    elif image.shape != images.shape[1:]:
      raise DataError(f'{shown}: images differ in size ({images.shape[1:]} '
                      f'and {image.shape}); set --config.image_size=N to '
                      'resize them all to NxN')
    images[i] = image
    labels[i] = ex[label_key]
  return images, labels


def _info(name: str, data_dir: str | None):
  import tensorflow_datasets as tfds
  tfds_name = name[len(PREFIX):]
  if not tfds_name:
    raise DataError("dataset 'tfds:' names no TFDS dataset (e.g. tfds:mnist)")
  try:
    info = tfds.builder(tfds_name, data_dir=data_dir).info
  except Exception as e:
    raise DataError(
        f'{name}: TFDS does not know this dataset '
        f'({type(e).__name__}: {str(e).splitlines()[0][:160]})') from None
  keys = info.supervised_keys or ('image', 'label')
  if not (isinstance(keys, tuple) and len(keys) == 2 and
          all(isinstance(k, str) for k in keys)):
    raise DataError(f'{name}: supervised keys {keys!r} are not one '
                    '(image, label) pair')
  features = info.features
  for key in keys:
    if key not in features:
      raise DataError(f'{name} is not an image-classification dataset: it '
                      f'has no {key!r} feature (features: '
                      f'{", ".join(features.keys())})')
  shape = tuple(features[keys[0]].shape)
  classes = getattr(features[keys[1]], 'num_classes', None)
  if len(shape) not in (2, 3):
    raise DataError(f'{name} is not an image-classification dataset: '
                    f'{keys[0]!r} has shape {shape}, not an image\'s')
  if not classes:
    raise DataError(f'{name} is not an image-classification dataset: '
                    f'{keys[1]!r} is not a class label')
  return tfds_name, info, keys, shape, int(classes)


def _splits(info) -> tuple[str | None, str | None]:
  """TFDS's validation and test split names (None: carve from train). A
  dataset whose split list is unknown (mocked) is taken to have a test."""
  known = set(info.splits.keys())
  if not known:
    return None, 'test'
  val = next((s for s in VAL_SPLITS if s in known), None)
  return val, 'test' if 'test' in known else None


def _image_size(name: str, shape: tuple, image_size: int) -> tuple[int, int]:
  """(size, channels) the job's images will have, the metadata's shape
  checked: square and fixed unless image_size resizes them."""
  h, w = shape[:2]
  channels = shape[2] if len(shape) == 3 else 1
  if not image_size:
    if h is None or w is None:
      raise DataError(f'{name}: images differ in size ({shape}); set '
                      '--config.image_size=N to resize them all to NxN')
    if h != w:
      raise DataError(f'{name}: images are {h}x{w}; the teachers here take '
                      'square images (set --config.image_size=N to resize)')
  if channels is None:
    raise DataError(f'{name}: images have no fixed channel count {shape}')
  return image_size or h, channels


def tfds_spec(name: str,
              data_dir: str | None = None,
              image_size: int = 0) -> DatasetSpec:
  """The DatasetSpec of 'tfds:NAME' from its metadata: nothing is read but
  the splits' lengths."""
  meta = _info(name, data_dir)
  size, channels = _image_size(name, meta[3], image_size)
  n = _split_sizes(name, data_dir, meta)['train']
  return DatasetSpec(name, size, channels, meta[4], n)


def split_sizes(name: str, data_dir: str | None = None) -> dict[str, int]:
  """How many images of 'tfds:NAME' the job trains, validates and tests
  on (carved splits included); reads only the splits' lengths."""
  return _split_sizes(name, data_dir, _info(name, data_dir))


def _split_sizes(name: str, data_dir: str | None, meta) -> dict[str, int]:
  tfds_name, info, *_ = meta
  val, test = _splits(info)
  sizes = {'train': len(source(tfds_name, 'train', data_dir, name))}
  for split, tfds_split in (('test', test), ('val', val)):
    if tfds_split is None:
      part = max(1, int(round(sizes['train'] * 0.1)))
      sizes['train'] -= part
    else:
      part = len(source(tfds_name, tfds_split, data_dir, name))
    sizes[split] = part
  return sizes


def load_tfds(name: str,
              data_dir: str | None = None,
              image_size: int = 0) -> Dataset:
  """The Dataset 'tfds:NAME', every split read into host memory."""
  tfds_name, info, keys, shape, classes = _info(name, data_dir)
  size, _ = _image_size(name, shape, image_size)
  val_split, test_split = _splits(info)

  def read(split):
    src = source(tfds_name, split, data_dir, name)
    return Split(*read_split(src, keys, image_size, f'{name} {split}'))

  train = read('train')
  if test_split is None:
    train, test = carve(train, seed=1)
  else:
    test = read(test_split)
  if val_split is None:
    train, val = carve(train)
  else:
    val = read(val_split)
  for split, part in (('train', train), ('val', val), ('test', test)):
    if len(part) and part.labels.max() >= classes:
      raise DataError(f'{name}: {split} label {int(part.labels.max())} is '
                      f'out of range for its {classes} classes')
  if train.images.shape[1:3] != (size, size):
    raise DataError(f'{name}: images are {train.images.shape[1:3]}, not the '
                    f'{size}x{size} its metadata says')
  mean, std = normalisation(train)
  return Dataset(name, train, val, test, mean, std, classes)


def num_classes(name: str, data_dir: str | None = None) -> int:
  """The class count of 'tfds:NAME' from its metadata."""
  return _info(name, data_dir)[4]
