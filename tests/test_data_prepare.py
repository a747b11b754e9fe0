"""esnac_jax.data.prepare: what it builds, where, and what it refuses."""

import pytest
import tensorflow_datasets as tfds

from esnac_jax.data import prepare


def test_a_prepared_dataset_is_read_back_not_rebuilt(monkeypatch):
  monkeypatch.setattr(tfds, 'builder', lambda *a, **k: pytest.fail('built'))
  lines = []
  with tfds.testing.mock_data(num_examples=40):
    sizes = prepare.prepare('cifar10', None, log=lines.append)
  assert sizes == {'train': 36, 'val': 4, 'test': 40}
  assert 'already prepared' in lines[0]
  assert lines[-1] == 'cifar10: 36 train / 4 val / 40 test images, 10 classes'


def test_any_tfds_dataset_by_name(monkeypatch):
  monkeypatch.setattr(tfds, 'builder', _no_build(tfds.builder))
  lines = []
  with tfds.testing.mock_data(num_examples=20):
    sizes = prepare.prepare('tfds:tf_flowers', None, log=lines.append)
  assert sizes == {'train': 18, 'test': 20, 'val': 2}
  assert lines[-1] == 'tfds:tf_flowers: 18 train / 2 val / 20 test images, ' \
      '5 classes'


def _no_build(builder):
  """tfds.builder that may read metadata but never downloads."""

  def build(*args, **kwargs):
    b = builder(*args, **kwargs)
    b.download_and_prepare = lambda *a, **k: pytest.fail('built')
    return b

  return build


def test_a_missing_dataset_is_built_as_array_record_in_data_dir(
    tmp_path, monkeypatch):
  calls = []
  real = tfds.builder

  def offline():
    raise ConnectionError('offline')  # as on this machine

  def builder(name, data_dir=None, file_format=None):
    if file_format is None:  # metadata only
      return real(name, data_dir=data_dir)
    calls.append((name, data_dir, file_format))
    b = real(name, data_dir=data_dir)
    b.download_and_prepare = offline
    return b

  monkeypatch.setattr(tfds, 'builder', builder)
  for name in ('cifar100', 'tfds:mnist'):
    with pytest.raises(ConnectionError):
      prepare.prepare(name, str(tmp_path), log=lambda s: None)
  assert calls == [('cifar100', str(tmp_path), 'array_record'),
                   ('mnist', str(tmp_path), 'array_record')]


@pytest.mark.parametrize('name,message', [
    ('digits', 'needs no preparation: scikit-learn ships it'),
    ('npz:/tmp/x.npz', 'needs no preparation: the job reads the file'),
    ('mnist', "choose one of cifar10, cifar100 or tfds:NAME"),
])
def test_refused_before_any_work(name, message):
  with pytest.raises(ValueError, match=message):
    prepare.prepare(name, None)
