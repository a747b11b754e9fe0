"""XLA options that compile the many small students of a search faster on
a CPU, where compiling each one is most of a search step.

`--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=1`
cut the compile seconds of the digits students by 37% for a 5% slower
step (bench.evaluate; docs/benchmarks.md, "XLA options"). XLA reads
XLA_FLAGS once, when JAX first starts a backend, and stops the process on
a flag it does not know, so the job sets them before anything starts a
backend and, under 'auto', only where they are known to work.

config.xla_cpu_fast_compile: 'auto' (on for a JAX install without an
accelerator plugin, or with JAX_PLATFORMS=cpu, at a jaxlib version they
were measured with, unless XLA_FLAGS already names them), 'on' (append
them whatever the install) or 'off'.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable, MutableMapping, Sequence

FLAGS = ('--xla_cpu_use_fusion_emitters=false',
         '--xla_backend_optimization_level=1')
MODES = ('auto', 'on', 'off')
TESTED_JAXLIB = ('0.10.2',)
# Modules whose presence means JAX may start a GPU or TPU backend, which
# the optimisation level would reach too.
ACCELERATOR_MODULES = ('jax_cuda12_plugin', 'jax_cuda13_plugin',
                       'jax_rocm60_plugin', 'jax_rocm7_plugin', 'libtpu')


def accelerator_plugins() -> list[str]:
  return [m for m in ACCELERATOR_MODULES if importlib.util.find_spec(m)]


def wanted(mode: str, environ: MutableMapping[str, str], jaxlib_version: str,
           plugins: Sequence[str]) -> bool:
  """Whether `mode` adds FLAGS here; raises a one-line ValueError for a
  mode that is not one of MODES."""
  if mode not in MODES:
    raise ValueError(f'config.xla_cpu_fast_compile={mode!r} is not one of '
                     f'{", ".join(MODES)}')
  named = any(f.split('=')[0] in environ.get('XLA_FLAGS', '') for f in FLAGS)
  if mode == 'off' or named:
    return False
  if mode == 'on':
    return True
  platforms = environ.get('JAX_PLATFORMS', '')
  cpu_only = platforms == 'cpu' or (not platforms and not plugins)
  return cpu_only and jaxlib_version in TESTED_JAXLIB


def apply(mode: str,
          environ: MutableMapping[str, str] | None = None,
          log: Callable[[str], None] | None = None) -> bool:
  """Appends FLAGS to XLA_FLAGS when `wanted`; call before JAX starts a
  backend. Returns whether it did."""
  import jaxlib
  environ = os.environ if environ is None else environ
  if not wanted(mode, environ, jaxlib.__version__, accelerator_plugins()):
    return False
  environ['XLA_FLAGS'] = ' '.join(
      [environ.get('XLA_FLAGS', '').strip(), *FLAGS]).strip()
  if log:
    log(f'XLA:CPU compiles with {" ".join(FLAGS)} (faster for small '
        'students; config.xla_cpu_fast_compile=off turns it off)')
  return True
