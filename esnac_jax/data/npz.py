"""Your own arrays: `--config.dataset=npz:PATH`.

The file holds x_train, y_train, x_test, y_test and optionally x_val,
y_val: images [N, H, W, C] (or [N, H, W], one channel) of any numeric
type, labels [N] of integers 0..classes-1. Without a validation split, a
fixed tenth of the training images (a seeded random draw) becomes one.
Normalisation: per-channel mean and std of the training split.
"""

from __future__ import annotations

import functools
import io
import os

import numpy as np

from esnac_jax import paths
from esnac_jax.data.arrays import DataError, Dataset, Split, carve, normalisation
from esnac_jax.data.specs import DatasetSpec

PREFIX = 'npz:'
REQUIRED = ('x_train', 'y_train', 'x_test', 'y_test')
VAL_FRACTION = 0.1
SPLIT_SEED = 0


def is_npz(name: str) -> bool:
  return isinstance(name, str) and name.startswith(PREFIX)


def load_npz(name: str) -> Dataset:
  """The Dataset in the file `name` ('npz:PATH'), every array checked.
  The same unchanged file is read once (the config check, the teacher and
  the job all ask for it)."""
  path = name[len(PREFIX):]
  try:
    if paths.is_remote(path):
      st = paths.path(path).stat()
      version = (st.mtime, st.length)
    else:  # to the nanosecond, and a rewrite always moves ctime
      st = os.stat(path)
      version = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
  except OSError:
    raise DataError(f'no dataset file at {path}') from None
  return _load(name, version)


@functools.lru_cache(maxsize=2)
def _load(name: str, version: tuple) -> Dataset:
  path = name[len(PREFIX):]
  arrays = _read(path)
  splits = {}
  for split in ('train', 'val', 'test'):
    if f'x_{split}' in arrays or split != 'val':
      splits[split] = _split(arrays, split, path)
  carved = 'val' not in splits
  if carved:
    splits['train'], splits['val'] = carve(splits['train'], VAL_FRACTION,
                                           SPLIT_SEED)
  shapes = {s: v.images.shape[1:] for s, v in splits.items()}
  if len(set(shapes.values())) != 1:
    raise DataError(f'{path}: the splits hold images of different shapes '
                    f'{shapes}')
  labels = np.concatenate([s.labels for s in splits.values()])
  classes = int(labels.max()) + 1
  if classes > len(labels):
    raise DataError(f'{path}: the largest label, {classes - 1}, means '
                    f'{classes:,} classes for {len(labels):,} images; labels '
                    'are 0..classes-1 (remap them, e.g. with '
                    'np.unique(y, return_inverse=True))')
  learnt = set(np.unique(splits['train'].labels).tolist())
  for split in ('val', 'test'):
    unseen = sorted(set(np.unique(splits[split].labels).tolist()) - learnt)
    if unseen:
      where = (' once a tenth of x_train became the validation split'
               if carved else '')
      raise DataError(f'{path}: the {split} split holds class(es) '
                      f'{", ".join(map(str, unseen[:5]))} that no training '
                      f'image has{where}, so no network can learn them; '
                      'check the labels')
  if classes < 2:
    raise DataError(f'{path}: the labels hold a single class; a classifier '
                    'needs at least 2')
  mean, std = normalisation(splits['train'])
  return Dataset(name, splits['train'], splits['val'], splits['test'], mean,
                 std, classes)


def npz_spec(name: str, image_size: int = 0) -> DatasetSpec:
  """The DatasetSpec of an npz dataset (reads and checks the file), its
  images resized to image_size x image_size when that is set."""
  ds = load_npz(name)
  h, w, c = ds.image_shape
  if h != w and not image_size:
    raise DataError(f'{name[len(PREFIX):]}: images are {h}x{w}; the '
                    'teachers here take square images (set '
                    '--config.image_size=N to resize)')
  return DatasetSpec(name, image_size or h, c, ds.num_classes, len(ds.train))


def _read(path: str) -> dict[str, np.ndarray]:
  try:
    data = io.BytesIO(paths.path(path).read_bytes())
    with np.load(data, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except FileNotFoundError:
    raise DataError(f'no dataset file at {path}') from None
  except Exception as e:  # zip/npy errors of many kinds
    raise DataError(f'{path} is not a readable .npz file ({type(e).__name__}'
                    f': {str(e)[:120]})') from None
  missing = [k for k in REQUIRED if k not in arrays]
  if missing:
    raise DataError(f'{path} lacks {", ".join(missing)} (it needs x_train, '
                    'y_train, x_test, y_test; x_val, y_val optional)')
  if ('x_val' in arrays) != ('y_val' in arrays):
    raise DataError(f'{path} has only one of x_val and y_val')
  return arrays


def _split(arrays: dict, split: str, path: str) -> Split:
  x, y = arrays[f'x_{split}'], arrays[f'y_{split}']
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise DataError(f'{path}: x_{split} must be images [N, H, W, C] or '
                    f'[N, H, W], got shape {x.shape}')
  if x.shape[1] <= 4 < x.shape[2] == x.shape[3]:  # PyTorch's layout
    raise DataError(f'{path}: x_{split} of shape {x.shape} looks like '
                    '[N, C, H, W]; give [N, H, W, C] images, e.g. '
                    'np.transpose(x, (0, 2, 3, 1))')
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(
      x.dtype, np.complexfloating):
    raise DataError(f'{path}: x_{split} must be numbers, got {x.dtype}')
  if len(x) == 0:
    raise DataError(f'{path}: x_{split} is empty')
  if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
    raise DataError(f'{path}: x_{split} holds NaN or infinite values')
  if y.ndim == 2 and y.shape[1] == 1:  # as Keras' datasets give them
    y = y[:, 0]
  if y.ndim != 1 or len(y) != len(x):
    raise DataError(f'{path}: y_{split} must be [{len(x)}] labels (one per '
                    f'image of x_{split}), got shape {y.shape}')
  if not np.issubdtype(y.dtype, np.integer):
    if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and
            np.all(y == np.round(y))):
      raise DataError(f'{path}: y_{split} must be integer class labels, got '
                      f'{y.dtype}')
  if y.min() < 0:
    raise DataError(f'{path}: y_{split} holds a negative label {int(y.min())}'
                    '; labels are 0..classes-1')
  images = x if x.dtype == np.uint8 else x.astype(np.float32)
  return Split(images, y.astype(np.int32))
