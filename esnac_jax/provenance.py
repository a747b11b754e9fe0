"""What produced a run: code, package versions, backend, devices, command.

Two runs of "the same command" on different machines can give different
teachers; results.json records this so they can be told apart afterwards.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from typing import Any

import jax

import esnac_jax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy',
            'ml-collections')


def git_commit(path: str | None = None) -> str | None:
  """The commit of the checkout holding `path` (this package by default),
  with '+dirty' when it has uncommitted changes; None outside a checkout."""
  where = path or os.path.dirname(os.path.abspath(esnac_jax.__file__))
  try:
    head = subprocess.run(['git', 'rev-parse', 'HEAD'],
                          cwd=where,
                          capture_output=True,
                          text=True,
                          timeout=10)
    if head.returncode != 0:
      return None
    dirty = subprocess.run(
        ['git', 'status', '--porcelain', '--untracked-files=no'],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  return head.stdout.strip() + ('+dirty' if dirty.stdout.strip() else '')


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
  """The provenance section of results.json."""
  devices = jax.devices()
  kinds: dict[str, int] = {}
  for d in devices:
    kinds[d.device_kind] = kinds.get(d.device_kind, 0) + 1
  return {
      'esnac_jax': esnac_jax.__version__,
      'git_commit': git_commit(),
      'packages': {
          p: _version(p) for p in PACKAGES
      },
      'python': sys.version.split()[0],
      'backend': jax.default_backend(),
      'devices': kinds,
      'process_count': jax.process_count(),
      'command': list(sys.argv if argv is None else argv),
  }
