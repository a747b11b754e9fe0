"""The device feed builds the host feed's batches on the device."""

import numpy as np
import pytest

from esnac_jax.data import Dataset, Split, train_batches
from esnac_jax.data.device_feed import (AUTO_MAX_BYTES, DeviceFeed, TrainFeed,
                                        resolve_feed)


def _dataset(crop: int, flip: bool, n: int = 300, shape=(9, 7, 3)) -> Dataset:
  rng = np.random.default_rng(crop + 2 * flip)
  train = Split(rng.integers(0, 256, (n,) + shape, dtype=np.uint8),
                rng.integers(0, 10, n).astype(np.int32))
  return Dataset('toy', train, train, train,
                 np.array([120.3, 99.7, 130.1], np.float32),
                 np.array([60.2, 55.5, 61.7], np.float32), 10, crop, flip)


@pytest.mark.parametrize('crop,flip', [(0, False), (3, False), (0, True),
                                       (2, True)])
@pytest.mark.parametrize('part', [(0, 1), (1, 2)])
def test_device_batches_equal_host_batches(crop, flip, part):
  """Same rows, crops and flips; pixels equal to float32 rounding (XLA's
  division may differ from NumPy's by one ulp)."""
  ds = _dataset(crop, flip)
  feed = DeviceFeed(ds)
  for augment_data in (True, False):
    host = list(train_batches(ds, 32, 5, 2, augment_data, part))
    dev = list(feed.batches(32, 5, 2, augment_data, part))
    assert len(host) == len(dev) == 300 // 32
    for (hx, hy), (dx, dy) in zip(host, dev):
      assert dx.shape == hx.shape and str(dx.dtype) == 'float32'
      np.testing.assert_array_equal(dy, hy)
      np.testing.assert_allclose(np.asarray(dx), hx, rtol=0, atol=1e-6)


def test_device_pixels_are_exact():
  """Before normalisation (mean 0, std 1) the device batches are the host's
  bit for bit, so a wrong crop offset or flip cannot hide in a tolerance."""
  ds = _dataset(2, True)
  ds = Dataset(ds.name, ds.train, ds.val, ds.test, np.zeros(3, np.float32),
               np.ones(3, np.float32), 10, 2, True)
  for (hx, _), (dx, _) in zip(train_batches(ds, 64, 1, 0),
                              DeviceFeed(ds).batches(64, 1, 0)):
    np.testing.assert_array_equal(np.asarray(dx), hx)


def test_resolve_feed():
  assert resolve_feed('auto', 'cpu') == 'host'
  assert resolve_feed('auto', 'gpu') == 'device'
  assert resolve_feed('auto', 'tpu', processes=2) == 'host'
  assert resolve_feed('auto', 'gpu', images_bytes=AUTO_MAX_BYTES + 1) == 'host'
  assert resolve_feed('device', 'cpu') == 'device'
  assert resolve_feed('host', 'gpu') == 'host'
  with pytest.raises(ValueError, match="one-process jobs only"):
    resolve_feed('device', 'gpu', processes=2)
  with pytest.raises(ValueError, match="must be one of auto, host, device"):
    resolve_feed('disk', 'cpu')


def test_train_feed_dispatch():
  ds = _dataset(1, True)
  host, dev = TrainFeed(ds, 'host'), TrainFeed(ds, 'device')
  assert not host.on_device and dev.on_device
  (hx, hy), = list(host(256, 0, 0))
  (dx, dy), = list(dev(256, 0, 0))
  assert isinstance(hx, np.ndarray) and not isinstance(dx, np.ndarray)
  np.testing.assert_array_equal(hy, dy)
  np.testing.assert_allclose(np.asarray(dx), hx, atol=1e-6)


@pytest.mark.parametrize('path', ['materialised', 'masked_vmap'])
def test_training_on_the_device_feed(path, monkeypatch):
  """Both training paths train on the device feed as on the host feed:
  the same validation accuracies (to one image) and nearby weights."""
  import dataclasses

  import jax

  from conftest import distillation_case
  from esnac_jax.train import (LossConfig, OptimConfig, TrainConfig,
                               distill_candidates)
  from esnac_jax.train.masked import distill_masked
  from esnac_jax.data import device_feed
  built = []
  build = device_feed.build_batch
  monkeypatch.setattr(device_feed, 'build_batch',
                      lambda *a, **k: built.append(1) or build(*a, **k))
  teacher, tvars, ds, kids = distillation_case(2, seed=4)
  host = TrainConfig(1,
                     32,
                     OptimConfig('adam', 1e-3),
                     LossConfig('mse'),
                     feed='host')
  dev = dataclasses.replace(host, feed='device')

  def run(cfg):
    if path == 'materialised':
      return distill_candidates(teacher, tvars, kids, ds, cfg, 0)
    return distill_masked(teacher, tvars, kids, ds, cfg, 0, True)

  a_all = run(host)
  assert not built
  b_all = run(dev)
  assert len(built) == len(ds.train) // 32  # every batch of the epoch
  for a, b in zip(a_all, b_all):
    assert abs(a.val_acc - b.val_acc) <= 1 / len(ds.val) + 1e-9
    for u, v in zip(jax.tree_util.tree_leaves(a.variables),
                    jax.tree_util.tree_leaves(b.variables)):
      np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-4)
