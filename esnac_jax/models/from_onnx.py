"""A teacher from an ONNX file: its Arch and its trained variables.

  arch, variables = load_onnx('resnet.onnx')   # e.g. from torch.onnx.export

What PyTorch exports for a CNN of these layers is read: Conv (square
kernels, symmetric padding, groups, no dilation), BatchNormalization,
Relu, Add (a residual sum), Concat on channels, MaxPool, AveragePool,
GlobalAveragePool or ReduceMean over H and W, Flatten or a Reshape to
[N, -1] (its target a constant or computed by Shape, Gather, Unsqueeze,
Concat..., as x.view(x.size(0), -1) exports with a dynamic batch), Gemm
or MatMul + Add (a Linear), the Reshape-Transpose-Reshape of a channel
shuffle, Identity and Dropout (inference: nothing), and the
Sub/Div/Transpose prologue `esnac_jax.export` writes (whose files read
back to the same Arch: their Identity nodes are the Arch's identity
layers). The graph runs in NCHW; the Arch and
its Flax model in NHWC, so kernels are transposed and, where a flatten
meets a spatial map, the next Linear's rows are reordered: the Flax model
computes the same logits as the ONNX graph (checked against onnxruntime
in the tests). Any other node is refused, named, before any work.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from esnac_jax.arch import INPUT, Arch, ArchBuilder
from esnac_jax.models.network import BN_EPSILON, layer_name

SUPPORTED = ('Conv', 'BatchNormalization', 'Relu', 'Clip', 'Add', 'Sum',
             'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool',
             'ReduceMean', 'Flatten', 'Reshape', 'Gemm', 'MatMul', 'Identity',
             'Dropout', 'Transpose', 'Sub', 'Div', 'Constant')
# Shape arithmetic, as exporters write x.view(x.size(0), -1) with a dynamic
# batch: Shape of an image tensor, then these on constants, folded here.
SHAPE_OPS = ('Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Cast',
             'Slice', 'Mul')


class OnnxImportError(ValueError):
  """The ONNX model has something the Arch cannot describe."""


@dataclasses.dataclass
class _Tensor:
  """A value of the graph: the layers whose outputs sum to it (INPUT for the
  graph input), its layout, and for a flat tensor the (H, W, C) map it was
  flattened from in NCHW order (None when its order is already Flax's)."""
  srcs: tuple[int, ...]
  # 'nchw', 'nhwc' (spatial), 'flat'; 'split'/'swapped' inside a channel
  # shuffle's Reshape-Transpose-Reshape (groups in `groups`).
  layout: str
  torch_flat_from: tuple[int, int, int] | None = None
  groups: int = 0


def load_onnx(model: Any, name: str = '') -> tuple[Arch, dict]:
  """(Arch, variables) of an ONNX model: a path, bytes or a ModelProto."""
  import onnx
  if isinstance(model, (bytes, bytearray)):
    model = onnx.load_model_from_string(bytes(model))
  elif not isinstance(model, onnx.ModelProto):
    from esnac_jax import paths
    try:
      model = onnx.load_model_from_string(paths.path(model).read_bytes())
    except OSError as e:
      raise OnnxImportError(f'cannot read the ONNX file {model}: '
                            f'{e.strerror or e}') from None
    except Exception as e:  # protobuf's DecodeError and kin
      raise OnnxImportError(f'{model} is not an ONNX model '
                            f'({type(e).__name__})') from None
  return _Reader(model, name).read()


class _Reader:

  def __init__(self, model: Any, name: str):
    from onnx import numpy_helper
    self.graph = model.graph
    # esnac_jax's own files keep an Arch's identity layers (a removed
    # layer) as Identity nodes; elsewhere an Identity is nothing.
    self.keep_identity = model.producer_name == 'esnac_jax'
    self.concat_outputs: set[str] = set()
    self.name = name or self.graph.name or 'onnx'
    self.consts: dict[str, np.ndarray] = {
        t.name: numpy_helper.to_array(t) for t in self.graph.initializer
    }
    self.params: dict[str, dict[str, np.ndarray]] = {}
    self.stats: dict[str, dict[str, np.ndarray]] = {}
    self.values: dict[str, _Tensor] = {}
    # MatMul output -> the Add of a constant bias that ends its Linear.
    consumers: dict[str, list[Any]] = {}
    for node in self.graph.node:
      for i in node.input:
        consumers.setdefault(i, []).append(node)
    self.bias_adds: dict[str, Any] = {}
    for node in self.graph.node:
      after = consumers.get(node.output[0], [])
      if node.op_type == 'MatMul' and len(after) == 1 and \
          after[0].op_type == 'Add' and \
          any(i in self.consts for i in after[0].input):
        self.bias_adds[node.output[0]] = after[0]
    self.fused_adds = {n.output[0] for n in self.bias_adds.values()}

  def read(self) -> tuple[Arch, dict]:
    inputs = [i for i in self.graph.input if i.name not in self.consts]
    if len(inputs) != 1:
      raise OnnxImportError(f'the model takes {len(inputs)} inputs; a '
                            'teacher takes one batch of images')
    shape = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(shape) != 4 or not all(shape[1:]):
      raise OnnxImportError(f'the input {inputs[0].name} has shape {shape}; '
                            'a teacher takes [N, C, H, W] images with fixed '
                            'C, H, W')
    self.input_dims = shape[1:]
    self.values[inputs[0].name] = _Tensor((INPUT,), 'nchw')
    self.b: ArchBuilder | None = None
    for node in self.graph.node:
      self._node(node)
    out = self.values.get(self.graph.output[0].name)
    if len(self.graph.output) != 1 or out is None or out.layout != 'flat':
      raise OnnxImportError('the model must end in one [N, classes] output')
    if len(out.srcs) > 1:
      self._layer('identity', out.srcs, 'output.sum')
    arch = self.b.build()
    variables = {'params': self.params}
    if self.stats:
      variables['batch_stats'] = self.stats
    return arch, variables

  # Helpers.

  def _where(self, node: Any) -> str:
    return f'ONNX node {node.name or node.output[0]!r} ({node.op_type})'

  def _in(self, node: Any, i: int = 0) -> _Tensor:
    try:
      return self.values[node.input[i]]
    except KeyError:
      raise OnnxImportError(f'{self._where(node)}: its input '
                            f'{node.input[i]!r} is not an image tensor of '
                            'the network') from None

  def _clip_max(self, node: Any, attrs: dict) -> float:
    """The upper bound of a Clip that is a capped ReLU (min 0, e.g.
    ReLU6); bounds come as inputs (opset >= 11) or attributes."""
    bounds = []
    for i, key in ((1, 'min'), (2, 'max')):
      if len(node.input) > i and node.input[i]:
        bounds.append(float(np.ravel(self._const(node, i))[0]))
      else:
        bounds.append(attrs.get(key))
    low, high = bounds
    if low != 0 or high is None or not 0 < high < float('inf'):
      raise OnnxImportError(f'{self._where(node)}: only Clip(min=0, max>0) '
                            f'(a capped ReLU such as ReLU6) is supported, got '
                            f'min={low}, max={high}')
    return float(high)

  def _fold(self, node: Any) -> bool:
    """Folds shape arithmetic into a constant; False for any other node.
    A Shape's batch dimension becomes 0, which a Reshape reads as "keep
    this dimension"."""
    op, ins = node.op_type, [i for i in node.input if i]
    if op == 'Shape':
      t = self._in(node)
      if t.layout == 'nchw':
        dims = [0, *self._shape_of(t.srcs)]
      elif t.layout == 'flat':
        dims = [0, int(np.prod(self._shape_of(t.srcs)))]
      else:
        raise OnnxImportError(f'{self._where(node)}: the shape of a '
                              f'{t.layout} tensor is not read')
      self.consts[node.output[0]] = np.asarray(dims, np.int64)
      return True
    if op not in SHAPE_OPS or not ins or \
        not all(i in self.consts for i in ins):
      return False
    a, attrs = [self.consts[i] for i in ins], self._attrs(node)
    if op == 'Gather':
      out = np.take(a[0], a[1], axis=attrs.get('axis', 0))
    elif op in ('Unsqueeze', 'Squeeze'):
      axes = a[1] if len(a) > 1 else attrs.get('axes')
      out = a[0]
      if op == 'Squeeze':
        out = np.squeeze(
            out, None if axes is None else tuple(
                int(x) % out.ndim for x in np.ravel(axes)))
      else:
        for ax in sorted(
            int(x) % (out.ndim + len(np.ravel(axes))) for x in np.ravel(axes)):
          out = np.expand_dims(out, ax)
    elif op == 'Concat':
      out = np.concatenate([np.atleast_1d(x) for x in a],
                           axis=attrs.get('axis', 0))
    elif op == 'Cast':
      out = a[0]  # shapes stay integers whatever the cast
    elif op == 'Slice':
      starts, ends = np.ravel(a[1]), np.ravel(a[2])
      axes = np.ravel(a[3]) if len(a) > 3 else range(len(starts))
      steps = np.ravel(a[4]) if len(a) > 4 else [1] * len(starts)
      index = [slice(None)] * a[0].ndim
      for s, e, ax, st in zip(starts, ends, axes, steps):
        index[int(ax)] = slice(int(s), int(e), int(st))
      out = a[0][tuple(index)]
    else:  # Mul
      out = a[0] * a[1]
    self.consts[node.output[0]] = np.asarray(out)
    return True

  def _const(self, node: Any, i: int) -> np.ndarray:
    if len(node.input) <= i or node.input[i] not in self.consts:
      raise OnnxImportError(f'{self._where(node)}: input {i} must be a '
                            'constant (an initializer)')
    return self.consts[node.input[i]]

  def _layer(self, kind: str, srcs: tuple[int, ...], label: str,
             **attrs: Any) -> int:
    if self.b is None:
      c, h, w = self.input_dims
      self.b = ArchBuilder(input_shape=(h, w, c), name=self.name)
      if srcs != (INPUT,):  # the first layer alone reads the input
        raise OnnxImportError(f'{label}: the first layer must read the '
                              'network input')
    elif INPUT in srcs:
      raise OnnxImportError(f'{label}: reads the network input, which only '
                            'the first layer of an Arch may do')
    try:
      return self.b.add(kind,
                        list(srcs) if len(srcs) > 1 else srcs[0], label,
                        **attrs)
    except ValueError as e:
      raise OnnxImportError(str(e)) from None

  def _set(self, node: Any, t: _Tensor) -> None:
    self.values[node.output[0]] = t

  @staticmethod
  def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}

  def _window(self, node: Any, attrs: dict[str, Any]) -> dict[str, int]:
    """kernel/stride/padding of a square, symmetric window."""
    k = list(attrs.get('kernel_shape', []))
    s = list(attrs.get('strides', [1, 1]))
    p = list(attrs.get('pads', [0, 0, 0, 0]))
    if attrs.get('auto_pad', b'NOTSET') not in (b'NOTSET', 'NOTSET'):
      raise OnnxImportError(f'{self._where(node)}: auto_pad is not supported'
                            '; export with explicit pads')
    if any(d != 1 for d in attrs.get('dilations', [1, 1])):
      raise OnnxImportError(f'{self._where(node)}: dilated windows have no '
                            'esnac_jax layer')
    if attrs.get('ceil_mode', 0):
      raise OnnxImportError(f'{self._where(node)}: ceil_mode=1 has no '
                            'esnac_jax layer')
    if len(k) != 2 or k[0] != k[1] or len(set(s)) != 1 or len(set(p)) != 1:
      raise OnnxImportError(f'{self._where(node)}: kernel {k}, strides {s}, '
                            f'pads {p}: esnac_jax layers use square kernels, '
                            'equal strides and equal padding on every side')
    return {'kernel': int(k[0]), 'stride': int(s[0]), 'padding': int(p[0])}

  def _spatial(self, node: Any) -> _Tensor:
    t = self._in(node)
    if t.layout == 'flat':
      raise OnnxImportError(f'{self._where(node)}: needs an image (N, C, H, '
                            'W) input, got a flat one')
    return t

  # Nodes.

  def _node(self, node: Any) -> None:
    op = node.op_type
    if self._fold(node):
      return
    if op not in SUPPORTED:
      raise OnnxImportError(f'{self._where(node)} has no esnac_jax layer; '
                            f'supported: {", ".join(SUPPORTED)}')
    attrs = self._attrs(node)
    label = node.name or node.output[0]
    if op == 'Constant':
      from onnx import numpy_helper
      self.consts[node.output[0]] = numpy_helper.to_array(attrs['value'])
      return
    if op == 'Identity' and self.keep_identity and \
        node.input[0] not in self.concat_outputs:
      self._elementwise(node, 'identity', label)
      return
    if op in ('Identity', 'Dropout'):
      self._set(node, self._in(node))
      return
    if op in ('Sub', 'Div'):  # input normalisation: the data's job here
      t = self._in(node)
      if t.srcs != (INPUT,):
        raise OnnxImportError(f'{self._where(node)}: only the network input '
                              'may be normalised inside the graph')
      self._set(node, t)
      return
    if op == 'Transpose':
      t, perm = self._in(node), list(attrs.get('perm', []))
      if t.srcs == (INPUT,) and perm == [0, 3, 1, 2]:  # NHWC images in
        c, h, w = self.input_dims
        self.input_dims = [w, c, h]  # the declared shape was [N, H, W, C]
        self._set(node, _Tensor(t.srcs, 'nchw'))
      elif t.layout == 'nchw' and perm == [0, 2, 3, 1]:
        self._set(node, _Tensor(t.srcs, 'nhwc'))
      elif t.layout == 'split' and perm == [0, 2, 1, 3, 4]:
        self._set(node, _Tensor(t.srcs, 'swapped', groups=t.groups))
      else:
        raise OnnxImportError(f'{self._where(node)}: perm {perm} is not a '
                              'layout change esnac_jax reads')
      return
    if op == 'Add' and node.output[0] in self.fused_adds:
      return  # the bias of the MatMul before it, already in its layer
    if op in ('Add', 'Sum'):
      ts = [self.values.get(i) for i in node.input]
      if any(t is None for t in ts) or len({t.layout for t in ts}) != 1:
        raise OnnxImportError(f'{self._where(node)}: only sums of network '
                              'tensors of one layout are supported (a bias '
                              'belongs in the Conv or Gemm)')
      srcs = tuple(s for t in ts for s in t.srcs)
      self._set(node, _Tensor(srcs, ts[0].layout, ts[0].torch_flat_from))
      return
    if op == 'Relu':
      self._elementwise(node, 'relu', label)
      return
    if op == 'Clip':
      self._elementwise(node, 'relu', label, clip=self._clip_max(node, attrs))
      return
    if op == 'Concat':
      ts = [self._in(node, i) for i in range(len(node.input))]
      if attrs.get('axis') != 1 or any(t.layout != 'nchw' for t in ts):
        raise OnnxImportError(f'{self._where(node)}: only a concat of '
                              'images on channels (axis 1) is supported')
      srcs = [self._sum(t, f'{label}.in{i}') for i, t in enumerate(ts)]
      # An Arch concatenates its sources in layer order: a source that
      # comes after a later layer is copied (identity) to keep its place.
      for k in range(1, len(srcs)):
        if srcs[k] <= srcs[k - 1]:
          srcs[k] = self._layer('identity', (srcs[k],), f'{label}.in{k}')
      self._set(node,
                _Tensor((self._layer('concat', tuple(srcs), label),), 'nchw'))
      self.concat_outputs.add(node.output[0])
      return
    if op == 'Reshape' and self._in(node).layout in ('nchw', 'swapped'):
      self._shuffle_reshape(node, label)
      return
    if op in ('Flatten', 'Reshape'):
      self._flatten(node, attrs, label)
      return
    if op in ('Gemm', 'MatMul'):
      self._gemm(node, attrs, label)
      return
    if op == 'ReduceMean':
      self._reduce_mean(node, attrs, label)
      return
    t = self._spatial(node)
    srcs = t.srcs  # a layer sums its sources, as the Add before it did
    if op == 'GlobalAveragePool':
      _, h, w = self._shape_of(srcs)
      if h != w:
        raise OnnxImportError(f'{self._where(node)}: a {h}x{w} map; global '
                              'pooling needs a square one')
      i = self._layer('avgpool', srcs, label, kernel=h, stride=1, padding=0)
    elif op in ('MaxPool', 'AveragePool'):
      window = self._window(node, attrs)
      if op == 'AveragePool' and window['padding'] and \
          not attrs.get('count_include_pad', 0):
        raise OnnxImportError(f'{self._where(node)}: a padded average that '
                              'excludes the padding has no esnac_jax layer; '
                              'export with count_include_pad=True')
      kind = 'maxpool' if op == 'MaxPool' else 'avgpool'
      i = self._layer(kind, srcs, label, **window)
    elif op == 'Conv':
      i = self._conv(node, attrs, srcs, label)
    else:  # BatchNormalization
      i = self._bn(node, attrs, srcs, label)
    self._set(node, _Tensor((i,), 'nchw'))

  def _elementwise(self, node: Any, kind: str, label: str,
                   **attrs: Any) -> None:
    """A layer of `kind` (relu, identity) on the node's input: it sums the
    input's sources and keeps its layout."""
    t = self._in(node)
    i = self._layer(kind, t.srcs, label, **attrs)
    self._set(node, _Tensor((i,), t.layout, t.torch_flat_from))

  def _shape_of(self, srcs: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) of a layer output (NHWC inside the builder)."""
    if srcs == (INPUT,):
      c, h, w = self.input_dims
      return c, h, w
    h, w, c = self.b._shape(srcs[0])  # noqa: SLF001  (the builder's shapes)
    return c, h, w

  def _sum(self, t: _Tensor, label: str) -> int:
    """The one layer holding `t`: a sum of several becomes an identity."""
    if len(t.srcs) == 1:
      return t.srcs[0]
    return self._layer('identity', t.srcs, label)

  def _conv(self, node: Any, attrs: dict, srcs: tuple[int, ...],
            label: str) -> int:
    w = np.asarray(self._const(node, 1), np.float32)  # [O, I/g, kH, kW]
    window = self._window(node, dict(attrs, kernel_shape=w.shape[2:]))
    groups = int(attrs.get('group', 1))
    bias = len(node.input) > 2 and node.input[2] != ''
    i = self._layer('conv',
                    srcs,
                    label,
                    out_channels=int(w.shape[0]),
                    groups=groups,
                    bias=bias,
                    **window)
    p = {'kernel': np.transpose(w, (2, 3, 1, 0))}  # HWIO
    if bias:
      p['bias'] = np.asarray(self._const(node, 2), np.float32)
    self.params[layer_name(i)] = p
    return i

  def _bn(self, node: Any, attrs: dict, srcs: tuple[int, ...],
          label: str) -> int:
    scale, shift, mean, var = (
        np.asarray(self._const(node, k), np.float32) for k in (1, 2, 3, 4))
    eps = float(attrs.get('epsilon', 1e-5))
    # (x - m) / sqrt(v + eps) == (x - m) / sqrt(v' + BN_EPSILON)
    var = var + np.float32(eps - BN_EPSILON)
    i = self._layer('bn', srcs, label)
    self.params[layer_name(i)] = {'scale': scale, 'bias': shift}
    self.stats[layer_name(i)] = {'mean': mean, 'var': var}
    return i

  def _flatten(self, node: Any, attrs: dict, label: str) -> None:
    t = self._in(node)
    if node.op_type == 'Flatten' and attrs.get('axis', 1) != 1:
      raise OnnxImportError(f'{self._where(node)}: only Flatten(axis=1) is '
                            'supported')
    if node.op_type == 'Reshape':
      target = [int(v) for v in self._const(node, 1)]
      if len(target) != 2 or target[0] not in (-1, 0, 1) and \
          target[1] != -1:
        raise OnnxImportError(f'{self._where(node)}: reshape to {target}; '
                              'only a flatten to [N, -1] is supported')
    if t.layout == 'flat':
      self._set(node, t)
      return
    c, h, w = self._shape_of(t.srcs)
    i = self._layer('flatten', t.srcs, label)
    order = (h, w, c) if t.layout == 'nchw' and h * w > 1 else None
    self._set(node, _Tensor((i,), 'flat', order))

  def _gemm(self, node: Any, attrs: dict, label: str) -> None:
    t = self._in(node)
    if t.layout != 'flat':
      raise OnnxImportError(f'{self._where(node)}: needs a flat input; '
                            'flatten the feature map first')
    if attrs.get('transA', 0) or attrs.get('alpha', 1.0) != 1.0 or \
        attrs.get('beta', 1.0) != 1.0:
      raise OnnxImportError(f'{self._where(node)}: only Gemm with transA=0, '
                            'alpha=1, beta=1 (a Linear) is supported')
    w = np.asarray(self._const(node, 1), np.float32)
    if w.ndim != 2:
      raise OnnxImportError(f'{self._where(node)}: a weight of shape '
                            f'{w.shape}; a Linear has a 2-D one')
    if attrs.get('transB', 0):
      w = w.T  # [in, out]
    out_name = node.output[0]
    bias_const = None
    if node.op_type == 'MatMul' and out_name in self.bias_adds:
      add = self.bias_adds[out_name]
      bias_const = next(self.consts[i] for i in add.input if i in self.consts)
      out_name = add.output[0]  # the layer's output is the Add's
    if t.torch_flat_from is not None:  # rows in (C, H, W) order -> (H, W, C)
      h, wd, c = t.torch_flat_from
      w = w.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(h * wd * c, -1)
    if node.op_type == 'Gemm' and len(node.input) > 2 and node.input[2]:
      bias_const = self._const(node, 2)
    bias = bias_const is not None
    i = self._layer('linear',
                    t.srcs,
                    label,
                    out_channels=int(w.shape[1]),
                    bias=bias)
    p = {'kernel': w}
    if bias:
      b = np.asarray(bias_const, np.float32)
      p['bias'] = np.broadcast_to(b, (w.shape[1],)).copy()
    self.params[layer_name(i)] = p
    self.values[out_name] = _Tensor((i,), 'flat')

  def _shuffle_reshape(self, node: Any, label: str) -> None:
    """The two Reshapes of a channel shuffle (x.view(N, g, C/g, H, W)
    .transpose(1, 2).reshape(N, C, H, W)); any other Reshape of an image
    is a flatten."""
    t = self._in(node)
    target = [int(v) for v in self._const(node, 1)]
    c, h, w = self._shape_of(t.srcs)
    if t.layout == 'nchw' and len(target) == 5 and \
        target[3:] == [h, w] and target[1] * target[2] == c:
      self._set(node, _Tensor(t.srcs, 'split', groups=target[1]))
    elif t.layout == 'swapped' and len(target) == 4 and \
        target[1:] in ([c, h, w], [-1, h, w]):
      i = self._layer('shuffle', t.srcs, label, groups=t.groups)
      self._set(node, _Tensor((i,), 'nchw'))
    elif t.layout == 'nchw':
      self._flatten(node, {}, label)
    else:
      raise OnnxImportError(f'{self._where(node)}: reshape to {target} is '
                            'not the end of a channel shuffle')

  def _reduce_mean(self, node: Any, attrs: dict, label: str) -> None:
    """A mean over H and W: global average pooling (then a flatten when
    the reduced axes are dropped)."""
    t = self._spatial(node)
    axes = attrs.get('axes')
    if axes is None and len(node.input) > 1:
      axes = self._const(node, 1)
    if t.layout != 'nchw' or sorted(int(a) % 4 for a in axes or []) != [2, 3]:
      raise OnnxImportError(f'{self._where(node)}: only a mean over the '
                            'spatial axes (2, 3) is supported')
    c, h, w = self._shape_of(t.srcs)
    if h != w:
      raise OnnxImportError(f'{self._where(node)}: a {h}x{w} map; global '
                            'pooling needs a square one')
    i = self._layer('avgpool', t.srcs, label, kernel=h, stride=1, padding=0)
    if attrs.get('keepdims', 1):
      self._set(node, _Tensor((i,), 'nchw'))
    else:
      j = self._layer('flatten', (i,), f'{label}.flatten')
      self._set(node, _Tensor((j,), 'flat'))
