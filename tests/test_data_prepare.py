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


def test_a_missing_dataset_is_built_as_array_record_in_data_dir(
    tmp_path, monkeypatch):
  calls = []

  class Builder:

    def __init__(self, name, data_dir, file_format):
      calls.append((name, data_dir, file_format))

    def download_and_prepare(self):
      raise ConnectionError('offline')  # as on this machine

  monkeypatch.setattr(tfds, 'builder', Builder)
  with pytest.raises(ConnectionError):
    prepare.prepare('cifar100', str(tmp_path), log=lambda s: None)
  assert calls == [('cifar100', str(tmp_path), 'array_record')]


@pytest.mark.parametrize('name,message', [
    ('digits', 'needs no preparation: scikit-learn ships it'),
    ('npz:/tmp/x.npz', 'needs no preparation: the job reads the file'),
    ('mnist', "choose one of cifar10, cifar100"),
])
def test_refused_before_any_work(name, message):
  with pytest.raises(ValueError, match=message):
    prepare.prepare(name, None)
