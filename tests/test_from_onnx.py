"""ONNX import: graphs as PyTorch exports them, and our own exports, read
into an Arch and variables whose Flax model gives onnxruntime's logits;
what cannot be read is refused by name."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from esnac_jax.arch import sample
from esnac_jax.export import to_onnx
from esnac_jax.models import make_model
from esnac_jax.models.from_onnx import OnnxImportError, load_onnx
from conftest import TEACHER_NAMES, tiny_teacher
from test_export import _with_bn_stats

ort = pytest.importorskip('onnxruntime')


class _Net:
  """A graph written node by node, as torch.onnx.export lays it out."""

  def __init__(self, seed=0):
    self.rng = np.random.default_rng(seed)
    self.nodes, self.inits = [], []

  def const(self, name, a):
    self.inits.append(numpy_helper.from_array(np.asarray(a), name))
    return name

  def node(self, op, inputs, out, **attrs):
    self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
    return out

  def conv(self, x, cin, cout, k, out, stride=1, pad=0, groups=1, bias=False):
    w = self.rng.normal(0, 0.3, (cout, cin // groups, k, k)).astype('f4')
    ins = [x, self.const(out + '.w', w)]
    if bias:
      ins.append(
          self.const(out + '.b',
                     self.rng.normal(0, .1, cout).astype('f4')))
    return self.node('Conv',
                     ins,
                     out,
                     kernel_shape=[k, k],
                     strides=[stride, stride],
                     pads=[pad] * 4,
                     group=groups)

  def bn(self, x, c, out, eps=1e-5):
    r = self.rng
    ins = [x] + [
        self.const(f'{out}.{n}', a.astype('f4'))
        for n, a in (('s', r.uniform(.5, 1.5, c)), ('b', r.normal(0, .1, c)),
                     ('m', r.normal(0, .1, c)), ('v', r.uniform(.5, 1.5, c)))
    ]
    return self.node('BatchNormalization', ins, out, epsilon=eps)

  def model(self, out, shape, classes):
    graph = helper.make_graph(
        self.nodes, 'net',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', *shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ['N', classes])],
        self.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])


def _ort(model, x):
  s = ort.InferenceSession(model.SerializeToString(),
                           providers=['CPUExecutionProvider'])
  return s.run(None, {s.get_inputs()[0].name: x})[0]


def _flax(arch, variables, x_nhwc):
  return np.asarray(make_model(arch).apply(variables, x_nhwc, train=False))


def _residual_net(flatten='Flatten'):
  n = _Net()
  h = n.conv('x', 3, 8, 3, 'stem', pad=1)
  h = n.bn(h, 8, 'stem.bn', eps=1e-3)  # another epsilon than Flax's
  h = n.node('Relu', [h], 'stem.relu')
  r = n.conv(h, 8, 8, 3, 'b.conv', pad=1)
  r = n.bn(r, 8, 'b.bn')
  s = n.node('Add', [r, h], 'b.add')
  h = n.node('Relu', [s], 'b.relu')
  p = n.node('MaxPool', [h], 'pool', kernel_shape=[2, 2], strides=[2, 2])
  g = n.conv(p, 8, 8, 3, 'g.conv', pad=1, groups=2, bias=True)
  g = n.node('Relu', [g], 'g.relu')
  c = n.node('Concat', [g, p], 'cat', axis=1)
  c = n.node('Dropout', [c], 'drop')
  if flatten == 'Flatten':  # a 4x4 map: rows of the Linear reorder
    f = n.node('Flatten', [c], 'flat', axis=1)
    features = 16 * 4 * 4
  elif flatten == 'Reshape':  # global pooling, then x.view(N, -1)
    c = n.node('GlobalAveragePool', [c], 'gap')
    f = n.node('Reshape', [c, n.const('shape', np.array([0, -1]))], 'flat')
    features = 16
  else:  # x.view(x.size(0), -1) exported with a dynamic batch
    c = n.node('MaxPool', [c], 'pool2', kernel_shape=[2, 2], strides=[2, 2])

    def constant(name, a):
      return n.node('Constant', [],
                    name,
                    value=numpy_helper.from_array(np.asarray(a), name))

    s = n.node('Shape', [c], 'size')
    b = n.node('Gather', [s, constant('i0', np.array(0))], 'size0', axis=0)
    b = n.node('Unsqueeze', [b, constant('ax', np.array([0]))], 'size0.u')
    b = n.node('Cast', [b], 'size0.c', to=TensorProto.INT64)
    target = n.node('Concat', [b, constant('rest', np.array([-1]))],
                    'target',
                    axis=0)
    f = n.node('Reshape', [c, target], 'flat')
    features = 16 * 2 * 2
  w = n.rng.normal(0, .1, (5, features)).astype('f4')
  out = n.node('Gemm', [
      f,
      n.const('fc.w', w),
      n.const('fc.b',
              n.rng.normal(0, .1, 5).astype('f4'))
  ],
               'logits',
               transB=1)
  return n.model(out, (3, 8, 8), 5)


@pytest.mark.parametrize('flatten', ['Flatten', 'Reshape', 'view'])
def test_a_pytorch_style_graph_gives_onnxruntime_logits(flatten):
  model = _residual_net(flatten)
  arch, variables = load_onnx(model.SerializeToString(), name='mine')
  assert arch.input_shape == (8, 8, 3) and arch.output_shape == (5,)
  kinds = [l.kind for l in arch.layers]
  assert kinds.count('conv') == 3 and 'concat' in kinds
  # The residual Add feeds one Relu: a relu layer of two sources.
  [relu] = [i for i, l in enumerate(arch.layers) if l.name == 'b.relu']
  assert arch.layers[relu].kind == 'relu' and len(arch.in_edges[relu]) == 2
  x = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype('f4')
  want = _ort(model, x)
  got = _flax(arch, variables, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _shufflenet_style_net():
  """A channel shuffle as x.view(N, g, C/g, H, W).transpose(1, 2)
  .reshape(N, C, H, W), a residual Add read by a Conv (not a Relu), a
  spatial mean, and a Linear as MatMul + Add."""
  n = _Net(1)
  h = n.node('Relu', [n.bn(n.conv('x', 3, 8, 3, 'stem', pad=1), 8, 'bn')],
             'relu')
  s = n.node('Reshape', [h, n.const('s5', np.array([-1, 2, 4, 6, 6]))], 'split')
  s = n.node('Transpose', [s], 'swap', perm=[0, 2, 1, 3, 4])
  s = n.node('Reshape', [s, n.const('s4', np.array([-1, 8, 6, 6]))], 'shuffle')
  a = n.node('Add', [s, h], 'add')
  g = n.conv(a, 8, 8, 3, 'dw', pad=1, groups=8, bias=True)
  m = n.node('ReduceMean', [g], 'mean', axes=[2, 3], keepdims=0)
  w = n.rng.normal(0, .3, (8, 4)).astype('f4')
  y = n.node('MatMul', [m, n.const('fc.w', w)], 'mm')
  out = n.node('Add', [y, n.const('fc.b', np.ones(4, 'f4'))], 'logits')
  return n.model(out, (3, 6, 6), 4)


def test_shuffle_spatial_mean_and_matmul_graph():
  model = _shufflenet_style_net()
  arch, variables = load_onnx(model)
  kinds = [l.kind for l in arch.layers]
  assert 'shuffle' in kinds and kinds[-1] == 'linear'
  assert arch.layers[-1].bias
  [dw] = [i for i, l in enumerate(arch.layers) if l.name == 'dw']
  assert len(arch.in_edges[dw]) == 2  # the Add's two sources, summed
  x = np.random.default_rng(2).normal(size=(3, 3, 6, 6)).astype('f4')
  np.testing.assert_allclose(_flax(arch, variables, x.transpose(0, 2, 3, 1)),
                             _ort(model, x),
                             rtol=1e-4,
                             atol=1e-4)


# Every teacher (a plain chain, residual sums, grouped and depthwise convs,
# concat, channel shuffle) and two random children of each (slow tier: the
# fast tier reads the hand-written graphs above).
@pytest.mark.slow
@pytest.mark.parametrize('name', TEACHER_NAMES)
def test_our_export_reads_back_to_the_same_network(name):
  teacher = tiny_teacher(name)
  rng = np.random.default_rng(0)
  c = teacher.input_shape[-1]
  mean, std = rng.uniform(0, 1, c), rng.uniform(0.5, 2, c)
  archs = [teacher] + [sample(teacher, rng) for _ in range(2)]
  for k, arch in enumerate(archs):
    v = _with_bn_stats(arch, k)
    got, variables = load_onnx(to_onnx(arch, v, mean, std))
    assert [(l.kind, l.in_shape, l.out_shape) for l in got.layers] == \
        [(l.kind, l.in_shape, l.out_shape) for l in arch.layers]
    assert got.in_edges == arch.in_edges
    assert got.num_params == arch.num_params
    x = rng.uniform(0, 1, (2,) + arch.input_shape).astype('f4')
    xn = ((x - mean) / std).astype('f4')
    np.testing.assert_allclose(_flax(got, variables, xn),
                               _flax(arch, v, xn),
                               rtol=1e-4,
                               atol=1e-4)


def _one_node_net(op, **attrs):
  n = _Net()
  h = n.conv('x', 3, 4, 3, 'c', pad=1)
  h = n.node(op, [h], 'odd', **attrs)
  f = n.node('Flatten', [n.node('GlobalAveragePool', [h], 'gap')], 'flat')
  w = n.rng.normal(0, .1, (2, 4)).astype('f4')
  out = n.node('Gemm', [f, n.const('w', w)], 'logits', transB=1)
  return n.model(out, (3, 6, 6), 2)


@pytest.mark.parametrize('model,message', [
    (_one_node_net('Sigmoid'), "'odd' (Sigmoid) has no esnac_jax layer"),
    (_one_node_net('MaxPool',
                   kernel_shape=[3, 3],
                   strides=[1, 1],
                   pads=[1, 1, 1, 1],
                   dilations=[2, 2]), 'dilated'),
    (_one_node_net('MaxPool', kernel_shape=[2, 2], strides=[2, 2],
                   ceil_mode=1), 'ceil_mode'),
    (_one_node_net('MaxPool', kernel_shape=[3, 2]), 'square kernels'),
    (b'not a model', 'not an ONNX model'),
])
def test_refused_by_name(model, message, tmp_path):
  message = re.escape(message)
  if isinstance(model, bytes):
    path = tmp_path / 'bad.onnx'
    path.write_bytes(model)
    model = str(path)
  with pytest.raises(OnnxImportError, match=message):
    load_onnx(model)


def test_a_missing_file_is_named(tmp_path):
  with pytest.raises(OnnxImportError, match='cannot read the ONNX file'):
    load_onnx(str(tmp_path / 'nope.onnx'))


def _relu6_net():
  """MobileNetV2's Conv-BN-ReLU6 as torch exports it: Clip with min and
  max inputs (one a Constant node, one an initializer)."""
  n = _Net(3)
  h = n.bn(n.conv('x', 3, 8, 3, 'stem', pad=1), 8, 'bn')
  low = n.node('Constant', [],
               'zero',
               value=numpy_helper.from_array(np.array(0, 'f4'), 'zero'))
  h = n.node('Clip', [h, low, n.const('six', np.array(6, 'f4'))], 'relu6')
  h = n.conv(h, 8, 8, 3, 'dw', pad=1, groups=8)
  f = n.node('Flatten', [n.node('GlobalAveragePool', [h], 'gap')], 'flat')
  w = n.rng.normal(0, .3, (3, 8)).astype('f4')
  out = n.node('Gemm', [f, n.const('w', w)], 'logits', transB=1)
  return n.model(out, (3, 6, 6), 3)


def test_clip_as_relu6_reads_and_round_trips():
  model = _relu6_net()
  arch, variables = load_onnx(model)
  [relu] = [l for l in arch.layers if l.kind == 'relu']
  assert relu.clip == 6.0
  x = np.random.default_rng(4).normal(0, 4, (3, 3, 6, 6)).astype('f4')
  want = _ort(model, x)
  got = _flax(arch, variables, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # Our export writes Clip back, and reads back to the same network.
  again, _ = load_onnx(to_onnx(arch, variables))
  assert [l.replace(name='') for l in again.layers] == \
      [l.replace(name='') for l in arch.layers]
  np.testing.assert_allclose(_ort(to_onnx(arch, variables),
                                  x.transpose(0, 2, 3, 1)),
                             want,
                             rtol=1e-4,
                             atol=1e-4)


@pytest.mark.parametrize('bounds,message', [
    ((-1.0, 1.0), 'got min=-1.0, max=1.0'),
    ((0.0, None), 'got min=0.0, max=None'),
])
def test_clip_other_than_a_capped_relu_is_refused(bounds, message):
  n = _Net()
  h = n.conv('x', 3, 4, 3, 'c', pad=1)
  ins = [h] + [
      n.const(f'b{i}', np.array(b, 'f4')) if b is not None else ''
      for i, b in enumerate(bounds)
  ]
  h = n.node('Clip', ins, 'odd')
  f = n.node('Flatten', [n.node('GlobalAveragePool', [h], 'gap')], 'flat')
  out = n.node('Gemm', [f, n.const('w', np.ones((2, 4), 'f4'))],
               'logits',
               transB=1)
  with pytest.raises(OnnxImportError,
                     match=r"'odd' \(Clip\): only Clip\(min=0, max>0\).*" +
                     re.escape(message)):
    load_onnx(n.model(out, (3, 6, 6), 2))
