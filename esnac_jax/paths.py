"""Where the job reads and writes: local folders or object stores.

Every path the job touches (workdir, checkpoints, results, plots,
TensorBoard, exports, teacher weights) goes through `etils.epath`, the path
layer orbax itself uses, so `gs://bucket/run` is a Cloud Storage prefix and
never a local folder named `gs:`. Local paths are made absolute once, here.
"""

from __future__ import annotations

import os
import uuid
from typing import Union

from etils import epath

PathLike = Union[str, os.PathLike]

# Schemes etils.epath serves (through tensorflow's gfile or fsspec).
REMOTE_SCHEMES = ('gs://', 's3://', 'az://', 'hf://')


def is_remote(p: PathLike) -> bool:
  """Whether `p` names an object store rather than a local path."""
  return os.fspath(p).startswith(REMOTE_SCHEMES)


# The module each object store needs when TensorFlow (gfile) is absent.
_CLIENTS = {'gs://': 'gcsfs', 's3://': 's3fs', 'az://': 'adlfs'}


def check_client(p: PathLike) -> None:
  """Raises ValueError, naming the package to install, when `p` is on an
  object store this Python cannot reach."""
  import importlib.util
  s = os.fspath(p)
  for scheme, module in _CLIENTS.items():
    if s.startswith(scheme) and importlib.util.find_spec(module) is None \
        and importlib.util.find_spec('tensorflow') is None:
      raise ValueError(f'{s} needs the {module} package (pip install '
                       f'{module}) to be read and written')


def path(p: PathLike) -> epath.Path:
  """`p` as an epath.Path: a remote URI as given, a local path absolute."""
  if isinstance(p, epath.Path) and is_remote(p):
    return p
  s = os.fspath(p)
  return epath.Path(s if is_remote(s) else os.path.abspath(s))


def join(p: PathLike, *parts: str) -> str:
  """`p`/`parts` as a string (the form logs and results.json show)."""
  return os.fspath(path(p).joinpath(*parts))


def write_text(p: PathLike, text: str) -> None:
  """Writes `text` so that a reader never sees a half-written file: into a
  temporary sibling, then renamed over `p` (on an object store each object
  write is already all-or-nothing)."""
  write_bytes(p, text.encode('utf-8'))


def write_bytes(p: PathLike, data: bytes) -> None:
  """Like `write_text`, for bytes (plots, model files)."""
  p = path(p)
  p.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(p):
    p.write_bytes(data)
    return
  tmp = p.with_name(f'.{p.name}.{uuid.uuid4().hex[:8]}.tmp')
  tmp.write_bytes(data)
  tmp.replace(p)


def rmtree(p: PathLike) -> None:
  """Removes the folder `p` and everything under it, if it exists."""
  p = path(p)
  if p.exists():
    p.rmtree()
