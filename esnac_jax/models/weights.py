"""Trained variables of an Arch from a file the user brings: a Flax msgpack
(`flax.serialization.to_bytes(variables)`) or an orbax checkpoint
(`orbax.checkpoint.StandardCheckpointer().save(path, variables)`, or a
workdir's `teacher/` folder), checked leaf by leaf against what
`make_model(arch)` expects."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from esnac_jax import paths
from esnac_jax.arch import Arch
from esnac_jax.models.network import init_variables, layer_name


class WeightsError(ValueError):
  """Weights that cannot be used for the Arch; the message names the path."""


def expected_shapes(arch: Arch) -> dict:
  """The variables tree `make_model(arch)` uses, as ShapeDtypeStructs."""
  return jax.eval_shape(lambda: init_variables(arch, jax.random.key(0)))


def restore_target(arch: Arch) -> dict:
  """Zero arrays shaped like `make_model(arch)`'s variables: the target
  orbax restores a saved tree into."""
  return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                expected_shapes(arch))


def load_variables(path: str, arch: Arch) -> dict:
  """The variables of `arch` saved at `path`; WeightsError naming the path
  and the first leaf that is missing, extra or of another shape."""
  if not paths.path(path).exists():
    raise WeightsError(f'no weights at {path}')
  try:
    if str(path).lower().endswith('.onnx'):
      from esnac_jax.models.from_onnx import load_onnx
      raw = load_onnx(path)[1]
    elif paths.path(path).is_dir():
      raw = _read_orbax(path)
    else:
      raw = _read_msgpack(path)
  except WeightsError:
    raise
  except Exception as e:  # flax/orbax raise many kinds for damaged files
    raise WeightsError(f'the weights at {path} are unreadable '
                       f'({type(e).__name__}: {str(e)[:160]})') from None
  want = expected_shapes(arch)
  check_tree(raw, want, path)
  return jax.tree_util.tree_map(lambda a, s: np.asarray(a, s.dtype),
                                _plain(raw), want)


def _read_msgpack(path: str) -> Any:
  from flax import serialization
  return serialization.msgpack_restore(paths.path(path).read_bytes())


def _read_orbax(path: str) -> Any:
  import orbax.checkpoint as ocp
  from esnac_jax import checkpoints
  steps = [p.name for p in paths.path(path).iterdir() if p.name.isdigit()]
  if steps:  # a CheckpointManager folder, e.g. a workdir's teacher/
    with checkpoints.manager(path, create=False) as mngr:
      step = mngr.latest_step()
      if step is None:
        raise WeightsError(f'{path} holds no finished checkpoint')
      return checkpoints.restore_tree(mngr, step, 'variables')
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(paths.path(path))


def _plain(tree: Any) -> Any:
  """Nested dicts (FrozenDicts and orbax's restored mappings alike)."""
  if hasattr(tree, 'items'):
    return {k: _plain(v) for k, v in tree.items()}
  return tree


def check_tree(got: Any, want: Any, path: str, where: str = '') -> None:
  """Raises WeightsError at the first leaf of `got` that does not match the
  shapes of `want`."""
  if hasattr(want, 'items'):
    if not hasattr(got, 'items'):
      raise WeightsError(f'the weights at {path}: {where or "the root"} should '
                         f'be a mapping, got {type(got).__name__}')
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
      raise WeightsError(f'the weights at {path} lack {where}{missing[0]} '
                         f'({len(missing)} missing entries); they must be '
                         "make_model(arch)'s variables for this teacher")
    if extra:
      raise WeightsError(f'the weights at {path} have {where}{extra[0]}, which '
                         f'this teacher does not ({len(extra)} extra entries)')
    for k in want:
      check_tree(got[k], want[k], path, f'{where}{k}/')
    return
  shape = tuple(np.shape(got))
  if shape != tuple(want.shape):
    raise WeightsError(f'the weights at {path}: {where[:-1]} has shape '
                       f'{shape}, the teacher needs {tuple(want.shape)}')
  if not np.all(np.isfinite(np.asarray(got, np.float64))):
    raise WeightsError(f'the weights at {path}: {where[:-1]} holds NaN or '
                       'infinite values')


def map_variables(arch: Arch,
                  variables: dict,
                  names: dict[str, str] | None = None) -> dict:
  """`make_model(arch)`'s variables from a Flax model of one's own.

  `variables` is that model's {'params': ..., 'batch_stats': ...} with one
  entry per Conv, BatchNorm and Dense module. Without `names`, the k-th
  conv layer of the Arch takes the k-th Conv module, and likewise for bn
  (BatchNorm) and linear (Dense), each kind in the order of Flax's
  automatic names (Conv_0, Conv_1, ...); `names` maps an Arch layer's name
  (or its 'layerNNN' key) to the module's name instead. Leaves keep Flax's own
  names (kernel, bias, scale, mean, var), so nothing is transposed. Raises
  WeightsError naming both sides at the first mismatch.
  """
  params = variables.get('params', variables)
  stats = variables.get('batch_stats', {})
  layers = [(i, l)
            for i, l in enumerate(arch.layers)
            if l.kind in ('conv', 'bn', 'linear')]
  if names is None:
    pairs = []
    for kind in ('conv', 'bn', 'linear'):
      mine = [i_l for i_l in layers if i_l[1].kind == kind]
      theirs = sorted((m for m in params if _module_kind(params[m]) == kind),
                      key=_auto_index)
      if len(mine) != len(theirs):
        raise WeightsError(f'your model has {len(theirs)} {kind} modules '
                           f'({", ".join(theirs[:4]) or "none"}), the '
                           f'teacher {len(mine)} {kind} layers; pass '
                           'names={layer name: module name}')
      pairs += list(zip(mine, theirs))
  else:
    by_name = {l.name: (i, l) for i, l in layers}
    by_name.update({layer_name(i): (i, l) for i, l in layers})
    unknown = sorted(set(names) - set(by_name))
    if unknown:
      raise WeightsError(f'names maps {unknown[0]!r}, which is not a conv, '
                         'bn or linear layer of the teacher')
    pairs = [(by_name[k], m) for k, m in names.items()]
    missing = sorted({layer_name(i) for i, _ in layers} -
                     {layer_name(i) for (i, _), _ in pairs})
    if missing:
      raise WeightsError(f'names leaves {missing[0]} of the teacher '
                         f'unmapped ({len(missing)} layers)')
  out: dict = {'params': {}, 'batch_stats': {}}
  for (i, layer), module in pairs:
    if module not in params:
      raise WeightsError(f'your model has no module {module!r} (it has '
                         f'{", ".join(list(params)[:6])}...)')
    tag = layer_name(i)
    out['params'][tag] = dict(params[module])
    if layer.kind == 'bn':
      if module not in stats:
        raise WeightsError(f'{module} has no batch_stats (mean, var) for '
                           f'{layer.name or tag}')
      out['batch_stats'][tag] = dict(stats[module])
  if not out['batch_stats']:
    del out['batch_stats']
  want = expected_shapes(arch)
  check_tree(out, want, 'your model')
  return jax.tree_util.tree_map(lambda a, s: np.asarray(a, s.dtype), out, want)


def _module_kind(p: Any) -> str:
  if hasattr(p, 'keys') and 'scale' in p:
    return 'bn'
  kernel = p.get('kernel') if hasattr(p, 'get') else None
  return {4: 'conv', 2: 'linear'}.get(np.ndim(kernel), '')


def _auto_index(name: str) -> int:
  """n of Flax's automatic module name `Kind_n` (else -1: first)."""
  tail = name.rpartition('_')[2]
  return int(tail) if tail.isdigit() else -1
