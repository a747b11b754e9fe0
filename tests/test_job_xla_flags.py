"""XLA:CPU options for fast student compiles (job.xla_flags): set only
where they are known to work, never twice, never over the user's own."""

import pytest

from esnac_jax.job import xla_flags as X

V = X.TESTED_JAXLIB[0]


def test_auto_sets_them_on_a_cpu_only_install_of_a_tested_jaxlib():
  assert X.wanted('auto', {}, V, [])
  assert X.wanted('auto', {'JAX_PLATFORMS': 'cpu'}, V, ['jax_cuda12_plugin'])
  assert not X.wanted('auto', {}, V, ['jax_cuda12_plugin'])  # a GPU may run
  assert not X.wanted('auto', {'JAX_PLATFORMS': 'cuda'}, V, [])
  assert not X.wanted('auto', {}, '0.0.1', [])  # flags it may not know
  assert X.wanted('on', {}, '0.0.1', ['libtpu'])
  assert not X.wanted('off', {}, V, [])


def test_the_users_own_setting_of_either_flag_wins():
  env = {'XLA_FLAGS': '--xla_backend_optimization_level=3'}
  assert not X.wanted('auto', env, V, []) and not X.wanted('on', env, V, [])


def test_apply_appends_to_xla_flags_once(monkeypatch):
  monkeypatch.setattr(X, 'accelerator_plugins', lambda: [])
  monkeypatch.setattr(X, 'TESTED_JAXLIB', (__import__('jaxlib').__version__,))
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  logs = []
  assert X.apply('auto', env, logs.append)
  assert env['XLA_FLAGS'].split() == [
      '--xla_force_host_platform_device_count=8', *X.FLAGS
  ]
  assert not X.apply('auto', env, logs.append)  # already there
  assert len(logs) == 1 and 'xla_cpu_fast_compile=off' in logs[0]
  assert not X.apply('off', {}, logs.append)


def test_a_bad_mode_is_one_line():
  with pytest.raises(ValueError,
                     match=r"xla_cpu_fast_compile='fast' is not "
                     'one of auto, on, off'):
    X.wanted('fast', {}, V, [])
