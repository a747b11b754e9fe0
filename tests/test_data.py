"""Datasets: the digits split, CIFAR via mocked TFDS, deterministic batching."""

import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from esnac_jax.data import (DataError, DatasetUnavailableError, augment,
                            dataset_spec, eval_batches, load_cifar,
                            load_dataset, load_digits, train_batches)


@pytest.fixture(scope='module')
def digits():
  return load_digits()


def test_digits_split(digits):
  sizes = len(digits.train), len(digits.val), len(digits.test)
  assert sum(sizes) == 1797 and sizes[0] > 1000
  assert digits.image_shape == (8, 8, 1) and digits.num_classes == 10
  for s in (digits.train, digits.val, digits.test):
    counts = np.bincount(s.labels, minlength=10) / len(s)
    assert np.all(np.abs(counts - 0.1) < 0.02)  # stratified
  x = digits.normalise(digits.train.images)
  assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
  again = load_digits()
  np.testing.assert_array_equal(again.val.labels, digits.val.labels)


def test_train_batches_are_deterministic(digits):
  a = list(train_batches(digits, 100, seed=1, epoch=0))
  b = list(train_batches(digits, 100, seed=1, epoch=0))
  c = list(train_batches(digits, 100, seed=1, epoch=1))
  assert len(a) == len(digits.train) // 100
  for (xa, ya), (xb, yb) in zip(a, b):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  assert not np.array_equal(a[0][1], c[0][1])
  seen = np.concatenate([y for _, y in a])
  assert len(seen) == 100 * len(a)


def test_train_batch_parts_make_the_whole_batch(digits):
  """Processes of a multi-host run each take their rows of the same
  minibatches, augmentation included."""
  import dataclasses
  ds = dataclasses.replace(digits, augment_crop=1, augment_flip=True)
  whole = list(train_batches(ds, 96, seed=2, epoch=3))
  parts = [
      list(train_batches(ds, 96, seed=2, epoch=3, part=(i, 3)))
      for i in range(3)
  ]
  assert all(len(p) == len(whole) for p in parts)
  for b, (x, y) in enumerate(whole):
    np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), x)
    np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), y)
  with pytest.raises(ValueError, match='does not split a batch of 96'):
    next(train_batches(ds, 96, seed=2, epoch=3, part=(0, 5)))


def test_eval_batches_cover_everything_once(digits):
  got = [(y, v) for _, y, v in eval_batches(digits, digits.val, 64)]
  labels = np.concatenate([y[v] for y, v in got])
  np.testing.assert_array_equal(labels, digits.val.labels)
  assert all(len(y) == 64 for y, _ in got)


def test_augment_crop_and_flip():
  rng = np.random.default_rng(0)
  img = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6, 1)
  out = augment(img, rng, crop=2, flip=False)
  assert out.shape == img.shape
  flipped = augment(img, np.random.default_rng(1), crop=0, flip=True)
  for a, b in zip(img, flipped):
    assert np.array_equal(a, b) or np.array_equal(a[:, ::-1], b)


@pytest.mark.parametrize('name,classes', [('cifar10', 10), ('cifar100', 100)])
def test_cifar_through_mocked_tfds(name, classes):
  with tfds.testing.mock_data(num_examples=40):
    ds = load_cifar(name)
  assert (len(ds.train), len(ds.val), len(ds.test)) == (36, 4, 40)
  assert ds.image_shape == (32, 32, 3) and ds.num_classes == classes
  assert ds.train.labels.max() < classes
  x, y = next(train_batches(ds, 8, seed=0, epoch=0))
  assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32
  with tfds.testing.mock_data(num_examples=40):
    assert len(load_dataset(name).train) == 36


def test_missing_cifar_is_a_clear_error(tmp_path):
  t = time.perf_counter()
  with pytest.raises(DatasetUnavailableError,
                     match=r"(?s)cifar10 is not "
                     r"prepared under data_dir=.*array_record.*"
                     r"--config.data_dir=DIR"):
    load_cifar('cifar10', data_dir=str(tmp_path))
  assert time.perf_counter() - t < 30  # never the ~200 s download retries


def test_bad_requests(digits):
  with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
    load_dataset('mnist')
  with pytest.raises(ValueError, match='cannot fill one batch'):
    next(train_batches(digits, 5000, 0, 0))


# ---- npz:PATH, the user's own arrays ----------------------------------------


def _arrays(n=60, size=6, channels=3, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  out = {}
  for split, m in (('train', n), ('test', n // 3)):
    out[f'x_{split}'] = rng.integers(0,
                                     256, (m, size, size, channels),
                                     dtype=np.uint8)
    out[f'y_{split}'] = np.arange(m) % classes
  return out


def _write(tmp_path, arrays, name='d.npz'):
  path = tmp_path / name
  np.savez(path, **arrays)
  return f'npz:{path}'


def test_npz_dataset_with_a_carved_validation_split(tmp_path):
  from esnac_jax.data import dataset_spec, load_dataset
  arrays = _arrays()
  name = _write(tmp_path, arrays)
  ds = load_dataset(name)
  assert (len(ds.train), len(ds.val), len(ds.test)) == (54, 6, 20)
  assert ds.num_classes == 4 and ds.image_shape == (6, 6, 3)
  assert ds.train.images.dtype == np.uint8
  np.testing.assert_allclose(ds.mean,
                             ds.train.images.mean(axis=(0, 1, 2)),
                             rtol=1e-5)
  again = load_dataset(_write(tmp_path, arrays, 'e.npz'))
  np.testing.assert_array_equal(again.val.labels, ds.val.labels)  # fixed
  spec = dataset_spec(name)
  assert (spec.image_size, spec.channels, spec.num_classes,
          spec.train_size) == (6, 3, 4, 54)
  # A given validation split is used as it is; [N, H, W] gains a channel.
  arrays = _arrays(channels=1)
  arrays = {k: v[..., 0] if k.startswith('x') else v for k, v in arrays.items()}
  arrays.update(x_val=arrays['x_test'][:5], y_val=arrays['y_test'][:5])
  ds = load_dataset(_write(tmp_path, arrays, 'f.npz'))
  assert len(ds.train) == 60 and len(ds.val) == 5
  assert ds.image_shape == (6, 6, 1)
  # Labels shaped [N, 1], as Keras' datasets give them, read as [N].
  arrays = {
      k: v[:, None] if k.startswith('y') else v for k, v in arrays.items()
  }
  again = load_dataset(_write(tmp_path, arrays, 'g.npz'))
  np.testing.assert_array_equal(again.test.labels, ds.test.labels)


def _drop(key):
  return lambda a: a.pop(key)


def _set(key, value):
  return lambda a: a.__setitem__(key, value)


@pytest.mark.parametrize(
    'change,message',
    [
        (_drop('y_test'), 'lacks y_test'),
        (_set('x_val', np.zeros((3, 6, 6, 3))), 'only one of x_val and y_val'),
        (_set('x_train', np.zeros((60, 36))), r'x_train must be images'),
        (_set('x_train', np.full((60, 6, 6, 3), np.nan)), 'NaN or infinite'),
        (_set('y_train', np.arange(59)), r'y_train must be \[60\] labels'),
        (_set('y_train', np.full(60, 0.5)), 'must be integer class labels'),
        (_set('y_train', -np.ones(60, int)), 'negative label -1'),
        (_set('y_train', np.where(np.arange(60) == 7, 10**9,
                                  np.arange(60) % 3)),
         r'the largest label, 1000000000, means 1,000,000,001 classes for 80 '
         r'images; labels are 0\.\.classes-1'),
        (_set('x_test', np.zeros((0, 6, 6, 3), np.uint8)), 'x_test is empty'),
        (_set('x_test', np.zeros(
            (20, 5, 5, 3), np.uint8)), 'images of different shapes'),
        (lambda a: [
            a.__setitem__('y_train', np.zeros(60, int)),
            a.__setitem__('y_test', np.zeros(20, int))
        ], 'single class'),
        (lambda a:
         [a.__setitem__(k, a[k][:, :, :5]) for k in ('x_train', 'x_test')],
         'images are 6x5'),
        (lambda a: [
            a.__setitem__(k, np.transpose(a[k], (0, 3, 1, 2)))
            for k in ('x_train', 'x_test')
        ], r'x_train of shape \(60, 3, 6, 6\) looks like \[N, C, H, W\]; give '
         r'\[N, H, W, C\]'),
        (_set('y_train', np.zeros(
            (60, 2), int)), r'y_train must be \[60\] labels'),
        (_set('y_test',
              np.arange(20) % 4 + 3), r'the test split holds '
         r'class\(es\) 4, 5, 6 that no training image has'),
        # class 3's one image is the first that the carve's seeded draw (seed
        # 0) moves to the validation split
        (lambda a: a.__setitem__(
            'y_train',
            np.where(
                np.arange(60) == np.random.default_rng(0).permutation(60)[0], 3,
                np.arange(60) % 3)),
         r'the val split holds class\(es\) 3 .* once a tenth of x_train became'
        ),
    ])
def test_malformed_npz_is_refused_in_one_line(tmp_path, change, message):
  from esnac_jax.data import dataset_spec
  arrays = _arrays()
  change(arrays)
  with pytest.raises(ValueError, match=message):
    dataset_spec(_write(tmp_path, arrays))


def test_a_rewritten_npz_file_is_read_again(tmp_path):
  """The loader's cache knows a file rewritten within the same second at
  the same size (and even given its old modification time back)."""
  import os
  from esnac_jax.data import load_dataset
  arrays = _arrays()
  name = _write(tmp_path, arrays)
  path = name[len('npz:'):]
  before = os.stat(path)
  first = load_dataset(name)
  arrays['x_test'] = 255 - arrays['x_test']
  _write(tmp_path, arrays)
  assert os.stat(path).st_size == before.st_size
  os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
  second = load_dataset(name)
  np.testing.assert_array_equal(second.test.images, 255 - first.test.images)


def test_npz_files_that_cannot_be_read(tmp_path):
  from esnac_jax.data import dataset_spec
  with pytest.raises(ValueError, match='no dataset file at'):
    dataset_spec(f'npz:{tmp_path}/missing.npz')
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='not a readable .npz file'):
    dataset_spec(f'npz:{bad}')


# ---- tfds:NAME, any prepared TFDS image-classification dataset -------------


def test_tfds_dataset_by_name_with_a_carved_validation_split():
  with tfds.testing.mock_data(num_examples=30):
    spec = dataset_spec('tfds:mnist')
    ds = load_dataset('tfds:mnist')
  assert (spec.image_size, spec.channels, spec.num_classes) == (28, 1, 10)
  # The mock lists no splits: train and test are read, val carved.
  assert (len(ds.train), len(ds.val), len(ds.test)) == (27, 3, 30)
  assert spec.train_size == len(ds.train)
  assert ds.image_shape == (28, 28, 1) and ds.train.images.dtype == np.uint8
  assert ds.train.labels.max() < 10 and ds.num_classes == 10
  x, y = next(train_batches(ds, 9, seed=0, epoch=0))
  np.testing.assert_allclose(x.mean(), 0, atol=0.3)  # train statistics
  assert x.shape == (9, 28, 28, 1) and y.shape == (9,)


def test_tfds_images_of_many_sizes_need_and_take_an_image_size():
  with tfds.testing.mock_data(num_examples=20):
    with pytest.raises(DataError,
                       match=r'tfds:tf_flowers: images differ in size .*'
                       r'--config\.image_size=N'):
      dataset_spec('tfds:tf_flowers')
    spec = dataset_spec('tfds:tf_flowers', image_size=12)
    ds = load_dataset('tfds:tf_flowers', image_size=12)
  assert (spec.image_size, spec.channels, spec.num_classes) == (12, 3, 5)
  assert ds.image_shape == (12, 12, 3) and ds.test.images.dtype == np.uint8
  assert len(ds.train) == spec.train_size == 18


def test_tfds_without_val_or_test_splits_carves_both(monkeypatch):
  from esnac_jax.data import tfds_source
  monkeypatch.setattr(tfds_source, '_splits', lambda info: (None, None))
  with tfds.testing.mock_data(num_examples=40):
    sizes = tfds_source.split_sizes('tfds:mnist')
    ds = load_dataset('tfds:mnist')
  assert sizes == {'train': 32, 'test': 4, 'val': 4}
  assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 4, 4)
  rows = np.concatenate([ds.train.images, ds.val.images, ds.test.images])
  assert len(np.unique(rows.reshape(40, -1), axis=0)) == 40  # disjoint


@pytest.mark.parametrize('name,message', [
    ('tfds:no_such_dataset_xyz',
     r'tfds:no_such_dataset_xyz: TFDS does not know this dataset'),
    ('tfds:imdb_reviews', r"not an image-classification dataset: 'text' "
     r'has shape \(\)'),
    ('tfds:', r"'tfds:' names no TFDS dataset"),
])
def test_tfds_names_that_cannot_be_image_datasets(name, message):
  with pytest.raises(DataError, match=message):
    dataset_spec(name)


def test_an_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
  with pytest.raises(DatasetUnavailableError,
                     match=r'(?s)tfds:mnist is not prepared under data_dir=.*'
                     r'--dataset=tfds:mnist'):
    dataset_spec('tfds:mnist', str(tmp_path))


def test_image_size_resizes_any_dataset(digits):
  ds = load_dataset('digits', image_size=16)
  assert ds.image_shape == (16, 16, 1)
  assert dataset_spec('digits', image_size=16).image_size == 16
  assert (len(ds.train), len(ds.val)) == (len(digits.train), len(digits.val))
  np.testing.assert_array_equal(ds.test.labels, digits.test.labels)
  with pytest.raises(ValueError, match=r'image_size=-1 must be a whole'):
    dataset_spec('digits', image_size=-1)


def test_resize_images_keeps_type_and_constant_images():
  from esnac_jax.data.arrays import resize_images
  flat = np.full((2, 5, 7, 3), 200, np.uint8)
  out = resize_images(flat, 4)
  assert out.shape == (2, 4, 4, 3) and out.dtype == np.uint8
  assert np.all(out == 200)
  ramp = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (1, 8, 1))[..., None]
  up = resize_images(ramp, 16)
  assert up.dtype == np.float32 and up.shape == (1, 16, 16, 1)
  assert np.all(np.diff(up[0, 0, :, 0]) >= 0)  # a ramp stays a ramp
  assert resize_images(ramp, 8) is ramp
