"""In-memory splits and deterministic NumPy batching.

All datasets here fit in host memory (CIFAR: 150 MB as uint8), so a split is
a pair of arrays and batching is index arithmetic: shuffles come from
(seed, epoch) alone, so a resumed run sees the same batches. Every process
of a multi-host job holds the whole dataset and feeds its own rows of each
minibatch (`train_batches(..., part=...)`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np


class DataError(ValueError):
  """Data that cannot be a dataset; the message names the file or key."""


@dataclasses.dataclass(frozen=True)
class Split:
  """images: uint8 or float32 NHWC (raw); labels: int32."""
  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if len(self.images) != len(self.labels):
      raise ValueError(f'{len(self.images)} images but {len(self.labels)} '
                       'labels')

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train/val/test splits plus how to turn raw images into model inputs."""
  name: str
  train: Split
  val: Split
  test: Split
  mean: np.ndarray  # per channel, in raw image units
  std: np.ndarray
  num_classes: int
  augment_crop: int = 0  # padding of the random crop (0: no crop)
  augment_flip: bool = False

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train.images.shape[1:])

  def normalise(self, images: np.ndarray) -> np.ndarray:
    return ((images.astype(np.float32) - self.mean) / self.std).astype(
        np.float32)


def carve(train: Split,
          fraction: float = 0.1,
          seed: int = 0) -> tuple[Split, Split]:
  """(rest, part): a fixed, seeded `fraction` of `train` split off, for a
  dataset that has no validation (or test) split of its own."""
  n = len(train)
  n_part = max(1, int(round(n * fraction)))
  if n - n_part < 1:
    raise DataError(f'{n} training images cannot spare a split of '
                    f'{n_part}; give a validation split')
  order = np.random.default_rng(seed).permutation(n)
  part, rest = np.sort(order[:n_part]), np.sort(order[n_part:])
  return (Split(train.images[rest], train.labels[rest]),
          Split(train.images[part], train.labels[part]))


def normalisation(train: Split) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of a training split (std 1 where constant)."""
  images = train.images.astype(np.float64)
  mean = images.mean(axis=(0, 1, 2)).astype(np.float32)
  std = images.std(axis=(0, 1, 2))
  return mean, np.where(std > 0, std, 1.0).astype(np.float32)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """[N, H, W, C] images resized (bilinear) to size x size, channel by
  channel; uint8 stays uint8 (rounded), anything else becomes float32."""
  from PIL import Image
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  out = np.empty((n, size, size, c), np.float32)
  for i in range(n):
    for k in range(c):
      plane = Image.fromarray(images[i, :, :, k].astype(np.float32), mode='F')
      out[i, :, :,
          k] = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
  if images.dtype == np.uint8:
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
  return out


def resized(ds: Dataset, size: int) -> Dataset:
  """`ds` with every split's images resized to size x size."""
  if not size or ds.image_shape[:2] == (size, size):
    return ds
  splits = [
      Split(resize_images(s.images, size), s.labels)
      for s in (ds.train, ds.val, ds.test)
  ]
  return dataclasses.replace(ds, train=splits[0], val=splits[1], test=splits[2])


def draw_augment(
    rng: np.random.Generator, n: int, crop: int, flip: bool
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
  """The random part of `augment` for n images: crop offsets (dy, dx) in
  0..2*crop and the flip mask (None where that augmentation is off)."""
  dy = dx = mask = None
  if crop:
    dy = rng.integers(0, 2 * crop + 1, n)
    dx = rng.integers(0, 2 * crop + 1, n)
  if flip:
    mask = rng.random(n) < 0.5
  return dy, dx, mask


def augment(images: np.ndarray, rng: np.random.Generator, crop: int,
            flip: bool) -> np.ndarray:
  """Random crop with zero padding `crop` and random horizontal flip."""
  plan = BatchPlan(np.arange(len(images)),
                   *draw_augment(rng, len(images), crop, flip))
  return apply_plan(images, plan, crop)


@dataclasses.dataclass(frozen=True)
class BatchPlan:
  """One training batch as indices and augmentation draws (no pixels): the
  host part of `train_batches`, which the device feed also uses."""
  index: np.ndarray  # sorted rows of the training split
  dy: np.ndarray | None
  dx: np.ndarray | None
  flip: np.ndarray | None


def batch_plans(
    ds: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    augment_data: bool = True,
    part: tuple[int, int] = (0, 1)
) -> Iterator[BatchPlan]:
  """The batches of one epoch as plans; see train_batches."""
  split = ds.train
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  if len(split) < batch_size:
    raise ValueError(f'{len(split)} training examples cannot fill one batch '
                     f'of {batch_size}')
  index, count = part
  if not 0 <= index < count or batch_size % count:
    raise ValueError(f'part {part} does not split a batch of {batch_size}')
  rows = slice(index * batch_size // count, (index + 1) * batch_size // count)
  rng = np.random.default_rng([seed, epoch])
  order = rng.permutation(len(split))
  on = augment_data and bool(ds.augment_crop or ds.augment_flip)
  for start in range(0, len(order) - batch_size + 1, batch_size):
    idx = np.sort(order[start:start + batch_size])
    dy = dx = flip = None
    if on:
      dy, dx, flip = draw_augment(rng, batch_size, ds.augment_crop,
                                  ds.augment_flip)
    yield BatchPlan(
        *(None if a is None else a[rows] for a in (idx, dy, dx, flip)))


def train_batches(
    ds: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    augment_data: bool = True,
    part: tuple[int, int] = (0, 1)
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """One epoch of shuffled, augmented, normalised batches (drop remainder).

  With part=(i, n), rows i*b/n .. (i+1)*b/n of each batch: process i's
  share of a minibatch that n processes train on together, the same
  minibatches whatever n.
  """
  for plan in batch_plans(ds, batch_size, seed, epoch, augment_data, part):
    x = apply_plan(ds.train.images, plan, ds.augment_crop)
    yield ds.normalise(x), ds.train.labels[plan.index]


def apply_plan(images: np.ndarray, plan: BatchPlan, crop: int) -> np.ndarray:
  """The raw images of a planned batch: gathered, cropped and flipped."""
  x = images[plan.index]
  n, h, w, _ = x.shape
  if plan.dy is not None:
    padded = np.pad(x, ((0, 0), (crop, crop), (crop, crop), (0, 0)))
    rows = plan.dy[:, None] + np.arange(h)[None]
    cols = plan.dx[:, None] + np.arange(w)[None]
    x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
  if plan.flip is not None:
    x = np.where(plan.flip[:, None, None, None], x[:, :, ::-1], x)
  return x


def eval_batches(
    ds: Dataset, split: Split,
    batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Every example once, in fixed-size batches with a validity mask."""
  n = len(split)
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size)
    valid = idx < n
    idx = np.where(valid, idx, 0)
    yield ds.normalise(split.images[idx]), split.labels[idx], valid
