"""job.xla_cache: where the job keeps compiled programs, and that a second
process loads them instead of compiling."""

import os
import subprocess
import sys

import pytest

from esnac_jax.job import xla_cache


def test_the_folder_each_setting_means(tmp_path):
  home = os.path.expanduser('~')
  assert xla_cache.folder('auto', {}) == os.path.join(home, '.cache',
                                                      'esnac_jax', 'xla')
  assert xla_cache.folder('auto', {'XDG_CACHE_HOME': '/c'}) == \
      '/c/esnac_jax/xla'
  assert xla_cache.folder('off', {}) is None
  assert xla_cache.folder(str(tmp_path / 'x'), {}) == str(tmp_path / 'x')
  assert xla_cache.folder('gs://b/xla', {}) == 'gs://b/xla'
  # the environment wins, as it does for JAX itself
  assert xla_cache.folder('off', {xla_cache.ENV: '/e'}) == '/e'


@pytest.mark.parametrize('bad, message', [('', 'must be auto, off or a folder'),
                                          (3, 'must be auto, off or a folder'),
                                          ('FILE', 'is a file, not a folder')])
def test_bad_settings_are_refused(tmp_path, bad, message):
  if bad == 'FILE':
    bad = str(tmp_path / 'f')
    open(bad, 'w').close()
  with pytest.raises(ValueError, match=f'config.compile_cache=.*{message}'):
    xla_cache.folder(bad, {})


_PROGRAM = """
import sys, time, jax, jax.numpy as jnp
from esnac_jax.job import xla_cache
xla_cache.enable(sys.argv[1], log=print)
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event)
    if event == '/jax/compilation_cache/cache_hits' else None)
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() * 3.0)
print('result', float(f(jnp.ones((64, 64)))))
print('min', jax.config.jax_persistent_cache_min_compile_time_secs)
print('hits', len(hits))
"""


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
  cache = tmp_path / 'xla'
  env = {
      k: v
      for k, v in os.environ.items()
      if k not in (xla_cache.ENV, xla_cache.MIN_SECONDS_ENV)
  }
  env['JAX_PLATFORMS'] = 'cpu'

  def run(folder=cache, **extra):
    p = subprocess.run([sys.executable, '-c', _PROGRAM,
                        str(folder)],
                       env=dict(env, **extra),
                       capture_output=True,
                       text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p

  # the job keeps programs that compiled in over 0.1 s (in a folder of
  # its own: on a loaded machine this one may take longer and be kept)
  assert run(tmp_path /
             'default').stdout.splitlines()[-2:] == ['min 0.1', 'hits 0']
  quick = {xla_cache.MIN_SECONDS_ENV: '0'}
  first = run(**quick).stdout.splitlines()
  assert first[0] == f'compilation cache: {cache}'
  assert first[-2:] == ['min 0.0', 'hits 0']
  entries = sorted(os.listdir(cache))
  assert entries, 'nothing was written to the cache'
  second = run(**quick).stdout.splitlines()
  assert sorted(os.listdir(cache)) == entries  # nothing new to compile
  assert second[-1] != 'hits 0' and second[1] == first[1]  # same result
