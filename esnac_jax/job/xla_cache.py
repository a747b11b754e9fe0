"""JAX's persistent compilation cache for the job: a resumed or repeated
run loads the executables of students, the surrogate and the teacher that
an earlier run compiled (same programs, same JAX and device) instead of
compiling them again.

config.compile_cache: 'auto' (the user's cache folder:
$XDG_CACHE_HOME/esnac_jax/xla, else ~/.cache/esnac_jax/xla), 'off', or a
folder (a gs:// one may be shared by the VMs of a pod).
JAX_COMPILATION_CACHE_DIR in the environment wins over it. Programs that
compile in over 0.1 s are kept (JAX's default, 1 s, would skip most small
students); JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS changes that.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

import jax

from esnac_jax import paths

ENV = 'JAX_COMPILATION_CACHE_DIR'
MIN_SECONDS_ENV = 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'
MIN_SECONDS = 0.1


def folder(setting: str,
           environ: Mapping[str, str] | None = None) -> str | None:
  """The cache folder `setting` means (None: off); raises a one-line
  ValueError for a setting that cannot be one."""
  environ = os.environ if environ is None else environ
  if not isinstance(setting, str) or not setting:
    raise ValueError(f'config.compile_cache={setting!r} must be auto, off or '
                     'a folder')
  if environ.get(ENV):
    return environ[ENV]
  if setting == 'off':
    return None
  if setting == 'auto':
    base = environ.get('XDG_CACHE_HOME') or os.path.join(
        os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'esnac_jax', 'xla')
  if paths.is_remote(setting):
    return setting
  path = os.path.expanduser(setting)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f'config.compile_cache={setting!r} is a file, not a '
                     'folder')
  return path


def enable(setting: str, log: Callable[[str], None] = print) -> str | None:
  """Points JAX's persistent compilation cache at `folder(setting)` (before
  the first compile of the process). A folder that cannot be created
  turns the cache off with a log line: it only saves time."""
  path = folder(setting)
  if path is None:
    return None
  try:
    paths.path(path).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    log(f'compilation cache off: cannot create {path}: {e.strerror or e}')
    return None
  jax.config.update('jax_compilation_cache_dir', path)
  if not os.environ.get(MIN_SECONDS_ENV):
    jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_SECONDS)
  log(f'compilation cache: {path}')
  return path
