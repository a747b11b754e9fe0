"""Checks the command line's config file and `--config.KEY=VALUE` overrides
before absl parses them, so each mistake is one line instead of a
traceback from inside ml_collections: a missing file, a syntax error
(file:line), a file without `get_config`, an unknown preset or config
argument, an unknown key (with the nearest valid keys)."""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from typing import Any, Sequence

import ml_collections


class ConfigFileError(ValueError):
  """The config file or an override cannot be used; the message is one
  line."""


def split_spec(spec: str) -> tuple[str, str | None]:
  """'configs/x.py:arg' -> ('configs/x.py', 'arg') (ml_collections' rule:
  everything after the first colon is get_config's argument)."""
  path, sep, arg = spec.partition(':')
  return path, (arg if sep else None)


def load(spec: str) -> ml_collections.ConfigDict:
  """The ConfigDict that `--config=spec` describes."""
  path, arg = split_spec(spec)
  if not path:
    raise ConfigFileError('--config is empty; give a config file, e.g. '
                          '--config=configs/digits.py')
  if not os.path.isfile(path):
    near = _nearby_configs(path)
    raise ConfigFileError(f'config file {path} does not exist' +
                          (f' (configs here: {near})' if near else ''))
  with open(path, encoding='utf-8', errors='replace') as f:
    source = f.read()
  try:
    compile(source, path, 'exec')
  except SyntaxError as e:
    raise ConfigFileError(f'syntax error in config file {e.filename}:'
                          f'{e.lineno}: {e.msg}') from None
  module = _import(path)
  get_config = getattr(module, 'get_config', None)
  if not callable(get_config):
    raise ConfigFileError(f'config file {path} has no get_config() '
                          'function; a config file defines get_config(arg='
                          'None) returning an ml_collections.ConfigDict')
  try:
    config = get_config(arg) if arg is not None else get_config()
  except (ValueError, TypeError, KeyError) as e:  # the argument or preset
    raise ConfigFileError(f'--config={spec}: {_one_line(e)}') from None
  except Exception as e:  # the file's own code
    raise ConfigFileError(f'get_config() of {path} fails: '
                          f'{type(e).__name__}: {_one_line(e)}') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigFileError(f'get_config() of {path} returned '
                          f'{type(config).__name__}, not a ConfigDict')
  return config


def _import(path: str) -> Any:
  name = f'_esnac_config_{abs(hash(os.path.abspath(path)))}'
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # the file's own code failed: say where
    tb = e.__traceback__
    line = None
    while tb is not None:
      if os.path.abspath(tb.tb_frame.f_code.co_filename) == \
          os.path.abspath(path):
        line = tb.tb_lineno
      tb = tb.tb_next
    where = f'{path}:{line}' if line else path
    raise ConfigFileError(f'config file {where} fails to load: '
                          f'{type(e).__name__}: {_one_line(e)}') from None
  return module


def _nearby_configs(path: str) -> str:
  folder = os.path.dirname(path) or '.'
  if not os.path.isdir(folder):
    return ''
  names = sorted(n for n in os.listdir(folder)
                 if n.endswith('.py') and not n.startswith('_'))
  return ', '.join(os.path.join(os.path.dirname(path), n) for n in names[:8])


def _one_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[-1] if text else type(e).__name__


def flat_keys(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Every key of `config`, sections included, as dotted paths."""
  out = []
  for k, v in config.items():
    out.append(prefix + k)
    if isinstance(v, ml_collections.ConfigDict):
      out.extend(flat_keys(v, f'{prefix}{k}.'))
  return out


def check_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[str]) -> None:
  """Each override key ('search.steps') must name a key of `config`."""
  keys = flat_keys(config)
  known = set(keys)
  for key in overrides:
    if key in known:
      continue
    parent = key.rpartition('.')[0]
    if parent and parent in known and not isinstance(_get(config, parent),
                                                     ml_collections.ConfigDict):
      raise ConfigFileError(f'--config.{key}: config.{parent} is a value, '
                            'not a section')
    near = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    hint = (f'did you mean {", ".join("--config." + n for n in near)}?'
            if near else 'see the config file for the keys')
    raise ConfigFileError(f'unknown config key --config.{key}; {hint}')


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  for part in key.split('.'):
    config = config[part]
  return config


def config_args(argv: Sequence[str]) -> tuple[str | None, list[str]]:
  """The --config value and the override keys on a command line."""
  spec, keys = None, []
  it = iter(range(len(argv)))
  for i in it:
    a = argv[i]
    if a == '--':
      break
    if a.startswith('--config='):
      spec = a[len('--config='):]
    elif a == '--config' and i + 1 < len(argv):
      spec = argv[i + 1]
      next(it, None)
    elif a.startswith('--config.') or a.startswith('--noconfig.'):
      key = a.split('=', 1)[0].split('.', 1)[1]
      keys.append(key)
  return spec, keys


def packaged(path: str) -> str | None:
  """The shipped config a missing `path` names ('configs/digits.py',
  'digits.py' or 'digits'), or None."""
  from esnac_jax.configs import DIRECTORY
  name = os.path.basename(path)
  name = name if name.endswith('.py') else f'{name}.py'
  candidate = os.path.join(DIRECTORY, name)
  if name.startswith('_') or not os.path.isfile(candidate):
    return None
  return candidate


def preflight(argv: Sequence[str]) -> list[str]:
  """Raises ConfigFileError for the first mistake in the config file or
  the override keys of `argv` (values are checked when absl parses them).
  Returns argv, with a --config that names a shipped config (and no file
  here) pointed at it."""
  argv = list(argv)
  spec, keys = config_args(argv)
  if spec is None:
    if keys:
      raise ConfigFileError('--config.KEY overrides need --config=FILE, '
                            'e.g. --config=configs/digits.py')
    return argv
  path, arg = split_spec(spec)
  shipped = packaged(path) if path and not os.path.exists(path) else None
  if shipped:
    spec = shipped + (f':{arg}' if arg is not None else '')
    argv = [
        f'--config={spec}' if a.startswith('--config=') else a for a in argv
    ]
    if '--config' in argv:
      argv[argv.index('--config') + 1] = spec
  config = load(spec)
  check_overrides(config, keys)
  return argv


def verbose_requested(argv: Sequence[str]) -> bool:
  """--verbose on the command line, or ESNAC_JAX_VERBOSE=1 in the
  environment: show tracebacks behind the one-line errors."""
  env = os.environ.get('ESNAC_JAX_VERBOSE', '').lower()
  return env in ('1', 'true', 'yes') or any(
      a in ('--verbose', '--verbose=true', '--verbose=True', '--verbose=1')
      for a in argv)


def print_error(message: str) -> None:
  print(f'error: {message}', file=sys.stderr, flush=True)
