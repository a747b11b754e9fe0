"""esnac_jax.paths: object-store URIs kept as given, local paths made
absolute, atomic writes, and a missing client named before any work."""

import os

import pytest

from esnac_jax import paths


def test_uris_stay_uris_and_local_paths_become_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert paths.join('gs://b/run', 'teacher') == 'gs://b/run/teacher'
  assert str(paths.path('gs://b/run')) == 'gs://b/run'
  assert paths.join('runs/x', 'search') == str(tmp_path / 'runs/x/search')
  assert paths.is_remote('s3://b/x') and not paths.is_remote('/gs/b')
  assert not os.listdir(tmp_path)  # naming paths creates nothing


def test_writes_replace_whole_files_and_leave_no_temporaries(tmp_path):
  target = tmp_path / 'deep' / 'results.json'
  paths.write_text(target, '{"a": 1}')
  paths.write_text(target, '{"a": 2}')
  paths.write_bytes(tmp_path / 'deep' / 'plot.png', b'\x89PNG')
  assert target.read_text() == '{"a": 2}'
  assert sorted(os.listdir(tmp_path / 'deep')) == ['plot.png', 'results.json']
  paths.rmtree(tmp_path / 'deep')
  paths.rmtree(tmp_path / 'deep')  # absent: nothing to do
  assert not (tmp_path / 'deep').exists()


def test_a_missing_object_store_client_is_named(monkeypatch):
  import importlib.util
  real = importlib.util.find_spec
  monkeypatch.setattr(
      importlib.util, 'find_spec', lambda name, *a: None
      if name in ('gcsfs', 'tensorflow', 's3fs') else real(name, *a))
  with pytest.raises(ValueError, match='needs the gcsfs package'):
    paths.check_client('gs://b/run')
  with pytest.raises(ValueError, match='s3fs'):
    paths.check_client('s3://b/run')
  paths.check_client('/tmp/run')  # local paths need nothing
