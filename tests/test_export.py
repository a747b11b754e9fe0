"""ONNX export: onnxruntime's outputs equal the Flax model's, for every zoo
teacher and random children of each; the orbax export reads back."""

import json
import os

import jax
import numpy as np
import pytest

from esnac_jax.arch import sample
from esnac_jax.export import save_orbax, to_onnx, to_stablehlo
from esnac_jax.models import init_variables, make_model
from conftest import TEACHER_NAMES, tiny_teacher

ort = pytest.importorskip('onnxruntime')


def _with_bn_stats(arch, seed):
  """Initialised weights with random BN affine terms and statistics, so
  every BN layer's export is exercised."""
  v = jax.device_get(init_variables(arch, jax.random.key(seed)))
  rng = np.random.default_rng(seed)

  def perturb(path, a):
    leaf = path[-1].key
    if leaf == 'var':
      return rng.uniform(0.5, 1.5, a.shape).astype(np.float32)
    if leaf in ('mean', 'scale', 'bias') and path[0].key == 'batch_stats' \
        or leaf == 'scale':
      return (a + rng.normal(0, 0.1, a.shape)).astype(np.float32)
    return a

  return jax.tree_util.tree_map_with_path(perturb, v)


def _onnx_logits(model, images):
  session = ort.InferenceSession(model.SerializeToString(),
                                 providers=['CPUExecutionProvider'])
  [out] = session.run(['logits'], {'images': images})
  return out


# The fast tier exports a residual net; the slow tier every teacher (a
# plain chain, grouped convs, concat, shuffle, depthwise).
@pytest.mark.parametrize('name', [
    n if n == 'resnet18' else pytest.param(n, marks=pytest.mark.slow)
    for n in TEACHER_NAMES
])
def test_onnx_equals_flax_for_teachers_and_children(name):
  teacher = tiny_teacher(name)
  rng = np.random.default_rng(0)
  archs = [teacher] + [sample(teacher, rng) for _ in range(2)]
  c = teacher.input_shape[-1]
  mean, std = rng.uniform(0, 1, c), rng.uniform(0.5, 2, c)
  images = rng.uniform(0, 1, (3,) + teacher.input_shape).astype(np.float32)
  for i, arch in enumerate(archs):
    v = _with_bn_stats(arch, i)
    want = make_model(arch).apply(v, ((images - mean) / std).astype(np.float32),
                                  train=False)
    got = _onnx_logits(to_onnx(arch, v, mean, std), images)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-4)


def test_onnx_batch_size_is_free():
  arch = tiny_teacher('resnet18')
  v = _with_bn_stats(arch, 0)
  model = to_onnx(arch, v)
  for n in (1, 5):
    x = np.random.default_rng(n).normal(size=(n,) + arch.input_shape).astype(
        np.float32)
    assert _onnx_logits(model, x).shape == (n, 10)


def test_orbax_export_is_self_contained(tmp_path):
  import orbax.checkpoint as ocp
  from esnac_jax.arch import Arch
  arch = tiny_teacher('vgg19')
  v = _with_bn_stats(arch, 0)
  out = str(tmp_path / 'student')
  save_orbax(out, arch, v, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
  with open(os.path.join(out, 'arch.json')) as f:
    assert Arch.from_json(f.read()) == arch
  with open(os.path.join(out, 'preprocessing.json')) as f:
    assert json.load(f)['std'] == [0.25] * 3
  with ocp.StandardCheckpointer() as ckptr:
    back = ckptr.restore(os.path.join(out, 'variables'))
  for a, b in zip(jax.tree_util.tree_leaves(v),
                  jax.tree_util.tree_leaves(back)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match='exists'):
    save_orbax(out, arch, v, [0.5] * 3, [0.25] * 3)


@pytest.mark.slow
def test_stablehlo_export_runs_without_the_model_code():
  arch = sample(tiny_teacher('resnet18'), np.random.default_rng(0))
  v = _with_bn_stats(arch, 1)
  mean, std = [0.5], [0.25]
  data = to_stablehlo(arch, v, mean, std)
  exported = jax.export.deserialize(bytearray(data))
  assert set(exported.platforms) == {'cpu', 'cuda', 'tpu'}
  model = make_model(arch)
  for n in (1, 3):  # any batch size
    x = np.random.default_rng(n).uniform(0, 1, (n,) + arch.input_shape)
    x = x.astype(np.float32)
    want = model.apply(v, (x - 0.5) / 0.25, train=False)
    np.testing.assert_allclose(exported.call(x), want, rtol=1e-4, atol=1e-4)
