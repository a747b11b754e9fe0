"""Exports a trained network (a finished workdir's student, or any Arch and
its variables) for deployment.

  python -m esnac_jax.export --workdir=/tmp/esnac_digits --format=onnx \
      --out=/tmp/student.onnx
  python -m esnac_jax.export --workdir=/tmp/esnac_digits --format=orbax \
      --out=/tmp/student
  python -m esnac_jax.export --workdir=/tmp/esnac_digits \
      --format=stablehlo --out=/tmp/student.jax

ONNX: one input `images`, raw NHWC float32 images in the dataset's own
units ([N, H, W, C], any N); the normalisation is part of the graph; one
output `logits` [N, classes]. Inside, the network runs in NCHW, as ONNX
runtimes expect. orbax: a folder with `arch.json` (the Arch document),
`preprocessing.json` (per-channel mean and std) and `variables/` (an orbax
checkpoint of `make_model(arch)`'s variables). stablehlo: a serialized
`jax.export` module (CPU, CUDA and TPU; any batch size; normalisation and
weights inside) that `jax.export.deserialize(data).call(images)` runs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from esnac_jax import paths
from esnac_jax.arch import Arch
from esnac_jax.models.network import BN_EPSILON, layer_name

OPSET = 17
FORMATS = ('onnx', 'orbax', 'stablehlo')


class _Graph:
  """ONNX nodes and initialisers being collected."""

  def __init__(self):
    self.nodes, self.inits = [], []

  def const(self, tag: str, value: Any, dtype: Any = np.float32) -> str:
    from onnx import numpy_helper
    self.inits.append(
        numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype)),
                                tag))
    return tag

  def node(self, op: str, inputs: list[str], out: str, **attrs) -> str:
    from onnx import helper
    self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
    return out


def to_onnx(arch: Arch,
            variables: dict,
            mean: Any = None,
            std: Any = None,
            name: str = '') -> Any:
  """The ONNX ModelProto of `arch` with `variables` (float32), taking raw
  NHWC images normalised by per-channel `mean` and `std` (default: none)."""
  import onnx
  from onnx import TensorProto, helper

  params = variables.get('params', {})
  stats = variables.get('batch_stats', {})
  g = _Graph()
  h, w, c = arch.input_shape
  x = 'images'
  if mean is not None:
    x = g.node('Sub', [x, g.const('norm.mean', np.reshape(mean, (c,)))],
               'norm.sub')
  if std is not None:
    x = g.node('Div', [x, g.const('norm.std', np.reshape(std, (c,)))],
               'norm.div')
  x = g.node('Transpose', [x], 'to_nchw', perm=[0, 3, 1, 2])

  outs: list[str] = []
  last = arch.num_layers - 1
  for i, layer in enumerate(arch.layers):
    srcs = arch.in_edges[i]
    tag = layer_name(i)
    if i == 0:
      h_in = x
    elif layer.kind == 'concat':
      h_in = g.node('Concat', [outs[j] for j in srcs], f'{tag}.concat', axis=1)
    elif len(srcs) == 1:
      h_in = outs[srcs[0]]
    else:
      h_in = g.node('Sum', [outs[j] for j in srcs], f'{tag}.sum')
    outs.append(
        _layer(g, layer, 'logits' if i == last else tag, tag, h_in,
               params.get(tag, {}), stats.get(tag, {})))
  if len(arch.output_shape) != 1:
    raise ValueError(f'the network ends in shape {arch.output_shape}; an '
                     'exported classifier ends in [classes]')
  graph = helper.make_graph(g.nodes, name or arch.name or 'esnac_jax', [
      helper.make_tensor_value_info('images', TensorProto.FLOAT, ['N', h, w, c])
  ], [
      helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                    ['N', arch.output_shape[0]])
  ], g.inits)
  model = helper.make_model(graph,
                            producer_name='esnac_jax',
                            opset_imports=[helper.make_opsetid('', OPSET)])
  onnx.checker.check_model(model)
  return model


def _layer(g: _Graph, layer, out: str, tag: str, x: str, p: dict,
           s: dict) -> str:
  """The ONNX nodes of one layer on NCHW (spatial) or [N, F] (flat) input;
  the layer's result is named `out`."""
  kind = layer.kind
  if kind in ('identity', 'concat'):
    return g.node('Identity', [x], out)
  if kind == 'relu' and layer.clip:
    return g.node('Clip', [
        x,
        g.const(f'{tag}.min', np.float32(0)),
        g.const(f'{tag}.max', np.float32(layer.clip))
    ], out)
  if kind == 'relu':
    return g.node('Relu', [x], out)
  if kind == 'flatten':
    if len(layer.in_shape) == 3:  # flax flattens in (H, W, C) order
      x = g.node('Transpose', [x], f'{tag}.nhwc', perm=[0, 2, 3, 1])
    return g.node('Flatten', [x], out, axis=1)
  if kind == 'shuffle':
    hh, ww, c = layer.in_shape
    k = layer.groups
    split = g.const(f'{tag}.split_shape', [-1, k, c // k, hh, ww], np.int64)
    merge = g.const(f'{tag}.merge_shape', [-1, c, hh, ww], np.int64)
    y = g.node('Reshape', [x, split], f'{tag}.split')
    y = g.node('Transpose', [y], f'{tag}.swap', perm=[0, 2, 1, 3, 4])
    return g.node('Reshape', [y, merge], out)
  if kind in ('maxpool', 'avgpool'):
    k, st, pad = layer.kernel, layer.stride, layer.padding
    attrs = dict(kernel_shape=[k, k],
                 strides=[st, st],
                 pads=[pad, pad, pad, pad])
    if kind == 'avgpool':
      attrs['count_include_pad'] = 1  # as the Flax model (and PyTorch)
    return g.node('MaxPool' if kind == 'maxpool' else 'AveragePool', [x], out,
                  **attrs)
  if kind == 'conv':
    weight = np.transpose(np.asarray(p['kernel']), (3, 2, 0, 1))  # OIHW
    inputs = [x, g.const(f'{tag}.weight', weight)]
    if layer.bias:
      inputs.append(g.const(f'{tag}.bias', p['bias']))
    pad = layer.padding
    return g.node('Conv',
                  inputs,
                  out,
                  kernel_shape=[layer.kernel] * 2,
                  strides=[layer.stride] * 2,
                  pads=[pad] * 4,
                  group=layer.groups)
  if kind == 'bn':
    return g.node('BatchNormalization', [
        x,
        g.const(f'{tag}.scale', p['scale']),
        g.const(f'{tag}.shift', p['bias']),
        g.const(f'{tag}.mean', s['mean']),
        g.const(f'{tag}.var', s['var'])
    ],
                  out,
                  epsilon=BN_EPSILON)
  if kind == 'linear':
    inputs = [x, g.const(f'{tag}.weight', p['kernel'])]
    if layer.bias:
      inputs.append(g.const(f'{tag}.bias', p['bias']))
    return g.node('Gemm', inputs, out)
  raise ValueError(f'{tag}: no ONNX export for layer kind {kind!r}')


def save_onnx(path: str,
              arch: Arch,
              variables: dict,
              mean: Any = None,
              std: Any = None) -> None:
  """Writes `to_onnx(...)` to `path` (atomically)."""
  model = to_onnx(arch, variables, mean, std)
  paths.write_bytes(path, model.SerializeToString())


def save_orbax(path: str, arch: Arch, variables: dict, mean: Any,
               std: Any) -> None:
  """A self-contained folder: arch.json, preprocessing.json, variables/."""
  import orbax.checkpoint as ocp
  folder = paths.path(path)
  if folder.exists():
    raise ValueError(f'{path} exists; give a new folder for the export')
  folder.mkdir(parents=True)
  paths.write_text(folder / 'arch.json', arch.to_json(indent=1))
  paths.write_text(
      folder / 'preprocessing.json',
      json.dumps(
          {
              'mean': [float(v) for v in np.ravel(mean)],
              'std': [float(v) for v in np.ravel(std)],
              'layout': 'NHWC'
          },
          indent=1))
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(folder / 'variables', variables)


def to_stablehlo(arch: Arch, variables: dict, mean: Any, std: Any) -> bytes:
  """The network as a serialized `jax.export.Exported` (StableHLO, weights
  as constants): raw NHWC float32 images [N, H, W, C], any N, in the
  dataset's units -> logits. Read back with
  `jax.export.deserialize(data).call(images)`; no esnac_jax needed."""
  import jax
  import jax.numpy as jnp
  from esnac_jax.models import make_model
  model = make_model(arch)
  frozen = jax.tree_util.tree_map(jnp.asarray, variables)
  shift = jnp.asarray(np.ravel(mean), jnp.float32)
  scale = jnp.asarray(np.ravel(std), jnp.float32)

  def logits(images):
    return model.apply(frozen, (images - shift) / scale, train=False)

  h, w, c = arch.input_shape
  (n,) = jax.export.symbolic_shape('n')
  spec = jax.ShapeDtypeStruct((n, h, w, c), jnp.float32)
  exported = jax.export.export(jax.jit(logits),
                               platforms=('cpu', 'cuda', 'tpu'))(spec)
  return bytes(exported.serialize())


def save_stablehlo(path: str, arch: Arch, variables: dict, mean: Any,
                   std: Any) -> None:
  """Writes `to_stablehlo(...)` to `path` (atomically)."""
  paths.write_bytes(path, to_stablehlo(arch, variables, mean, std))


def main(argv: list[str]) -> None:
  from absl import flags, logging
  from esnac_jax.student import load_student
  f = flags.FLAGS
  logging.set_verbosity(logging.WARNING)  # orbax's info lines are noise here
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}')
  if not f.workdir or not f.out:
    _fail('--workdir and --out are required')
  if f.format not in FORMATS:
    _fail(f'--format={f.format!r}: use one of {", ".join(FORMATS)}')
  try:
    student = load_student(f.workdir, f.rank, f.index)
    save = {
        'onnx': save_onnx,
        'orbax': save_orbax,
        'stablehlo': save_stablehlo
    }[f.format]
    save(f.out, student.arch, student.variables, student.mean, student.std)
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))
  print(f'exported candidate {student.index} ({student.arch.num_params:,} '
        f'params, val acc {student.val_acc:.4f}) to {f.out} ({f.format})')


def _fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def run() -> None:
  """The `esnac-jax-export` console script (python -m esnac_jax.export)."""
  from absl import app, flags
  flags.DEFINE_string('workdir', None, 'A finished esnac_jax workdir.')
  flags.DEFINE_string('out', None, 'The .onnx file or the orbax folder.')
  flags.DEFINE_enum('format', 'onnx', list(FORMATS), 'What to write.')
  flags.DEFINE_integer('rank', None, 'The finalist (default: the chosen).')
  flags.DEFINE_integer(
      'index', None, 'A candidate of results.json trained fully (among '
      'final.top_n or final.indices), instead of --rank.')
  app.run(main)


if __name__ == '__main__':
  run()
