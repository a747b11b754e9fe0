"""Training batches built on the accelerator from a copy of the split there.

The host feed (`train_batches`) gathers, crops, flips and normalises every
batch in NumPy on one host thread. A candidate step that runs faster than
that thread (small students on a GPU) then waits on the host. Here the raw
training images (uint8 for CIFAR: 138 MB) live on the device once, and each
batch is one jitted gather + crop + flip + normalise from its `BatchPlan`:
the same indices and random draws as the host feed, so both feeds give the
same batches (tests/test_data_device_feed.py) and a resumed run sees the
same data whichever it uses.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax.data.arrays import (BatchPlan, Dataset, batch_plans,
                                   train_batches)

FEEDS = ('auto', 'host', 'device')

jax.tree_util.register_dataclass(BatchPlan,
                                 data_fields=['index', 'dy', 'dx', 'flip'],
                                 meta_fields=[])


@functools.partial(jax.jit, static_argnames=('crop',))
def build_batch(images: jax.Array, plan: BatchPlan, mean: jax.Array,
                std: jax.Array, crop: int) -> jax.Array:
  """A planned batch of normalised float32 images, computed on the device."""
  x = images[plan.index]
  n, h, w, c = x.shape
  if plan.dy is not None:
    padded = jnp.pad(x, ((0, 0), (crop, crop), (crop, crop), (0, 0)))
    x = jax.vmap(
        lambda im, dy, dx: jax.lax.dynamic_slice(im, (dy, dx, 0), (h, w, c)))(
            padded, plan.dy, plan.dx)
  if plan.flip is not None:
    x = jnp.where(plan.flip[:, None, None, None], x[:, :, ::-1], x)
  return ((x.astype(jnp.float32) - mean) / std).astype(jnp.float32)


class DeviceFeed:
  """`train_batches` with the pixels on the device (see the module doc)."""

  def __init__(self, ds: Dataset, device: Any = None):
    """`device`: a jax.Device or Sharding for the split (default: the
    default device)."""
    self.ds = ds
    put = functools.partial(jax.device_put, device=device)
    self.images = put(ds.train.images)
    self.mean = put(np.asarray(ds.mean, np.float32))
    self.std = put(np.asarray(ds.std, np.float32))

  def batches(
      self,
      batch_size: int,
      seed: int,
      epoch: int,
      augment_data: bool = True,
      part: tuple[int, int] = (0, 1)
  ) -> Iterator[tuple[jax.Array, np.ndarray]]:
    """One epoch: (images on the device, labels) per batch, as
    train_batches(ds, batch_size, seed, epoch, augment_data, part)."""
    for plan in batch_plans(self.ds, batch_size, seed, epoch, augment_data,
                            part):
      x = build_batch(self.images, plan, self.mean, self.std,
                      self.ds.augment_crop)
      yield x, self.ds.train.labels[plan.index]


# 'auto' keeps a training split larger than this on the host.
AUTO_MAX_BYTES = 4 << 30


def resolve_feed(feed: str,
                 platform: str,
                 processes: int = 1,
                 images_bytes: int = 0) -> str:
  """'host' or 'device' for a feed setting on `platform` ('cpu', 'gpu',
  'tpu'). 'auto': the device feed on accelerators in a one-process job for
  splits up to AUTO_MAX_BYTES; the host feed on a CPU, where it keeps
  earlier runs' batches bit for bit (the device feed's division rounds
  differently, by at most one float32 ulp)."""
  if feed not in FEEDS:
    raise ValueError(f'data_feed must be one of {", ".join(FEEDS)}, got '
                     f'{feed!r}')
  if feed == 'device' and processes > 1:
    raise ValueError("data_feed='device' runs in one-process jobs only (each "
                     'process of a multi-process job feeds its own rows); '
                     "use 'host' or 'auto'")
  if feed != 'auto':
    return feed
  if platform == 'cpu' or processes > 1 or images_bytes > AUTO_MAX_BYTES:
    return 'host'
  return 'device'


class TrainFeed:
  """The training batches of one dataset, from the feed `feed` resolves
  to: call it as train_batches(ds, ...) without the dataset. `sharding`
  (device feed only) places the split, e.g. replicated over a mesh."""

  def __init__(self, ds: Dataset, feed: str = 'auto', sharding: Any = None):
    self.ds = ds
    self.kind = resolve_feed(feed, jax.default_backend(), jax.process_count(),
                             int(ds.train.images.nbytes))
    self._device = DeviceFeed(ds, sharding) if self.kind == 'device' else None

  @property
  def on_device(self) -> bool:
    return self._device is not None

  def __call__(
      self,
      batch_size: int,
      seed: int,
      epoch: int,
      augment_data: bool = True,
      part: tuple[int, int] = (0, 1)
  ) -> Iterator[tuple[Any, Any]]:
    if self._device is not None:
      return self._device.batches(batch_size, seed, epoch, augment_data, part)
    return train_batches(self.ds, batch_size, seed, epoch, augment_data, part)
