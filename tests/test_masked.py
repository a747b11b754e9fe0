"""The masked path equals the materialised path: outputs, BN statistics
and gradients of the kept parameters, on random children of every maskable
teacher. Compared in float64, where the two programs agree to rounding
(in float32 deep unnormalised children amplify rounding to ~1e-4)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esnac_jax.arch import SamplerConfig, get_teacher, mutate, sample
from esnac_jax.models import inherit, make_model
from esnac_jax.models.masked import (STACK_ABOVE, MaskedNet, candidate_masks,
                                     check_maskable, extra_pairs, extract,
                                     masked_variables, relaid_channels,
                                     skip_plan)
from conftest import (distillation_case, env_int, random_variables,
                      tiny_teacher)

N = env_int('ESNAC_MASKED_N', 1)
MASKABLE = ('vgg19', 'resnet18', 'resnet34', 'mobilenetv2')


def _run(model, variables, x, *args):
  """Logits, new BN statistics and parameter gradients in training mode."""

  def f(params):
    out, upd = model.apply(
        {
            'params': params,
            'batch_stats': variables['batch_stats']
        },
        x,
        *args,
        train=True,
        mutable=['batch_stats'])
    r = jnp.cos(jnp.arange(out.size, dtype=out.dtype)).reshape(out.shape)
    return jnp.sum(out * r), (out, upd['batch_stats'])  # a linear loss

  (_, (out,
       stats)), grads = jax.value_and_grad(f, has_aux=True)(variables['params'])
  return out, stats, grads


def _close(got, want, what):
  """Leaf by leaf, to 1e-9 of the largest value in the same layer (a conv
  bias read by a train-mode BN has exact gradient 0: only rounding), and
  1e-12 absolute for layers whose gradients all but vanish."""
  for layer, leaves in want.items():
    scale = max(float(np.max(np.abs(v))) for v in leaves.values()) + 1e-12
    for k, v in leaves.items():
      err = float(np.max(np.abs(np.asarray(got[layer][k]) - np.asarray(v))))
      assert err <= 1e-9 * scale + 1e-12, (what, layer, k, err, scale)
  assert set(got) == set(want)


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    n if n == 'resnet18' else pytest.param(n, marks=pytest.mark.slow)
    for n in MASKABLE
])
def test_masked_equals_materialised(name):
  teacher = tiny_teacher(name)
  rng = np.random.default_rng(0)
  children = [sample(teacher, rng) for _ in range(N)]
  children += [mutate(c, teacher, rng) for c in children]
  with jax.enable_x64(True):
    tvars = jax.tree_util.tree_map(lambda a: 0.3 * a.astype(np.float64),
                                   random_variables(teacher, seed=1))
    tvars['batch_stats'] = jax.tree_util.tree_map(lambda a: np.abs(a) + 0.5,
                                                  tvars['batch_stats'])
    x = rng.normal(size=(3,) + teacher.input_shape)
    mvars = masked_variables(tvars, 'inherit')
    masked = MaskedNet(teacher, jnp.float64)
    for child in children:
      cvars = inherit(teacher, child, tvars, 'first', 'inherit')
      masks = candidate_masks(teacher, child)
      model = make_model(child, jnp.float64)
      scale = float(np.max(np.abs(model.apply(cvars, x)))) + 1e-12
      assert np.max(
          np.abs(masked.apply(mvars, x, masks) -
                 model.apply(cvars, x))) <= 1e-9 * scale
      out_c, stats_c, g_c = _run(model, cvars, x)
      out_m, stats_m, g_m = _run(masked, mvars, x, masks)
      assert np.max(
          np.abs(out_m -
                 out_c)) <= 1e-9 * (float(np.max(np.abs(out_c))) + 1e-12)
      got = extract(teacher, child, {'params': g_m, 'batch_stats': stats_m})
      _close(got['params'], g_c, f'{name} gradients')
      _close(got['batch_stats'], stats_c, f'{name} BN statistics')


def test_skip_plan_stacks_only_crowded_shapes():
  """Every extra pair is read exactly once, summed or from a buffer; only
  shapes with more than STACK_ABOVE pairs use a buffer (ResNet-34's widest
  stage does, nothing in ResNet-18 does)."""
  for name, want_stacked in (('resnet18', False), ('resnet34', True)):
    teacher = tiny_teacher(name)
    pairs = extra_pairs(teacher)
    plan = skip_plan(teacher)
    seen = [(a, b) for b, v in plan.summed.items() for _, a in v]
    by_row = {(buf, r): a for a, (buf, r) in plan.slot.items()}
    for b, (buf, n, rows, ps) in plan.stacked.items():
      assert max(rows) + 1 == n
      for r, p in zip(rows, ps):
        assert by_row[(buf, r)] < b and pairs[p] == (by_row[(buf, r)], b)
        seen.append(pairs[p])
    assert sorted(seen) == sorted(pairs)
    assert bool(plan.stacked) == want_stacked, name
    per_buffer = {}
    for buf, _, _, ps in plan.stacked.values():
      per_buffer[buf] = per_buffer.get(buf, 0) + len(ps)
    assert all(n > STACK_ABOVE for n in per_buffer.values())


def test_stacked_skips_equal_materialised():
  """With every skip read from a buffer (stack_above=0) the masked network
  still computes the child: outputs, BN statistics and gradients."""
  teacher = tiny_teacher('resnet18')
  rng = np.random.default_rng(3)
  child = sample(teacher, rng)
  while not candidate_masks(teacher, child)['edge'].any():
    child = mutate(child, teacher, rng)
  with jax.enable_x64(True):
    tvars = jax.tree_util.tree_map(lambda a: 0.3 * a.astype(np.float64),
                                   random_variables(teacher, seed=4))
    tvars['batch_stats'] = jax.tree_util.tree_map(lambda a: np.abs(a) + 0.5,
                                                  tvars['batch_stats'])
    x = rng.normal(size=(3,) + teacher.input_shape)
    masked = MaskedNet(teacher, jnp.float64, stack_above=0)
    assert masked.stack_above == 0 and skip_plan(teacher, 0).stacked
    cvars = inherit(teacher, child, tvars, 'first', 'inherit')
    model = make_model(child, jnp.float64)
    out_c, stats_c, g_c = _run(model, cvars, x)
    out_m, stats_m, g_m = _run(masked, masked_variables(tvars, 'inherit'), x,
                               candidate_masks(teacher, child))
    assert np.max(np.abs(out_m - out_c)) <= 1e-9 * float(np.max(np.abs(out_c)))
    got = extract(teacher, child, {'params': g_m, 'batch_stats': stats_m})
    _close(got['params'], g_c, 'stacked gradients')
    _close(got['batch_stats'], stats_c, 'stacked BN statistics')


def test_masked_float32_forward_matches(teacher_name='resnet18'):
  """The default dtype: equal to float32 tolerance."""
  teacher = tiny_teacher(teacher_name)
  tvars = jax.tree_util.tree_map(lambda a: 0.3 * a,
                                 random_variables(teacher, seed=2))
  tvars['batch_stats'] = jax.tree_util.tree_map(lambda a: np.abs(a) + 0.5,
                                                tvars['batch_stats'])
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4,) + teacher.input_shape).astype(np.float32)
  child = sample(teacher, rng)
  got = MaskedNet(teacher).apply(masked_variables(tvars, 'inherit'), x,
                                 candidate_masks(teacher, child))
  want = make_model(child).apply(
      inherit(teacher, child, tvars, 'first', 'inherit'), x)
  np.testing.assert_allclose(got,
                             want,
                             rtol=1e-4,
                             atol=1e-4 * float(np.max(np.abs(want))))


def test_shufflenet_is_refused():
  with pytest.raises(ValueError,
                     match='masked path cannot run.*shuffle.*'
                     "materialised"):
    check_maskable(tiny_teacher('shufflenet'))


@pytest.mark.slow
def test_masked_distillation_equals_materialised():
  """Training: the same children distilled on both paths score the same
  validation accuracies and end with the same weights (float32)."""
  from esnac_jax.train import (LossConfig, OptimConfig, TrainConfig,
                               distill_candidates)
  from esnac_jax.train.masked import distill_masked
  teacher, tvars, ds, kids = distillation_case(2, seed=4)
  cfg = TrainConfig(2, 32, OptimConfig('adam', 1e-3), LossConfig('mse'))
  a = distill_candidates(teacher, tvars, kids, ds, cfg, seed=0)
  for vmap in (False, True):
    b = distill_masked(teacher, tvars, kids, ds, cfg, seed=0, vmap=vmap)
    for x, y in zip(a, b):
      assert x.history == y.history and x.best_epoch == y.best_epoch
      for u, v in zip(jax.tree_util.tree_leaves(x.variables),
                      jax.tree_util.tree_leaves(y.variables)):
        np.testing.assert_allclose(u,
                                   v,
                                   rtol=2e-3,
                                   atol=2e-3 * float(np.max(np.abs(u))))


def test_path_choice():
  from esnac_jax.job.evaluate import resolve_path
  r18, sfn = tiny_teacher('resnet18'), tiny_teacher('shufflenet')
  assert resolve_path('auto', r18, 'first', 'cpu') == 'materialised'
  assert resolve_path('auto', r18, 'first', 'gpu') == 'masked_vmap'
  assert resolve_path('auto', r18, 'l1', 'gpu') == 'materialised'
  assert resolve_path('auto', sfn, 'first', 'tpu') == 'materialised'
  # A full-size ResNet-18 step in float32 keeps a GPU busy with one child.
  big = get_teacher('resnet18', 100, 3, 1.0, 32)
  assert resolve_path('auto', big, 'first', 'gpu', 'float32',
                      128) == 'materialised'
  assert resolve_path('auto', big, 'first', 'gpu', 'bfloat16',
                      128) == 'masked_vmap'
  assert resolve_path('auto', big, 'first', 'gpu', 'float32',
                      8) == 'masked_vmap'
  assert resolve_path('masked', r18, 'first', 'cpu') == 'masked'
  with pytest.raises(ValueError, match='masked path cannot run'):
    resolve_path('masked_vmap', sfn, 'first', 'gpu')
  with pytest.raises(ValueError,
                     match="distill.select='l1' needs the "
                     'materialised path'):
    resolve_path('masked', r18, 'l1', 'cpu')


_MESH_SCRIPT = '''
import json
import jax, jax.numpy as jnp, numpy as np
from esnac_jax.arch import SamplerConfig, get_teacher, sample
from esnac_jax.data import load_dataset
from esnac_jax.models import make_model
from esnac_jax.train import LossConfig, OptimConfig, TrainConfig
from esnac_jax.train.masked import candidate_mesh, distill_masked
t = get_teacher('resnet18', num_classes=10, in_channels=1, width=0.125,
                input_size=8)
tv = make_model(t).init(jax.random.key(0), jnp.zeros((1,) + t.input_shape))
rng = np.random.default_rng(0)
kids = [sample(t, rng, SamplerConfig()) for _ in range(5)]
cfg = TrainConfig(epochs=1, batch_size=256, loss=LossConfig('mse'),
                  optim=OptimConfig(name='sgd', lr=0.05, momentum=0.9))
out = {'devices': jax.device_count()}
for name, mesh in (('one', None), ('mesh', candidate_mesh())):
  r = distill_masked(t, tv, kids, load_dataset('digits'), cfg, 3, vmap=True,
                     mesh=mesh)
  out[name] = {'acc': [x.val_acc for x in r], 'leaves': [
      [np.asarray(l).ravel()[:64].tolist()
       for l in jax.tree_util.tree_leaves(x.variables)] for x in r]}
print('RESULT', json.dumps(out))
'''


@pytest.mark.slow
def test_candidates_sharded_over_8_devices_match_one_device(tmp_path):
  """5 candidates (padded to 8) spread over 8 simulated CPU devices train to
  the same weights as on one device (float32 tolerance; SGD, as Adam's
  normalised steps would magnify rounding in tiny gradients); accuracies
  agree up to an argmax flip on a near tie."""
  import json
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ,
             JAX_PLATFORMS='cpu',
             JAX_DISABLE_MOST_OPTIMIZATIONS='true',
             XLA_FLAGS='--xla_force_host_platform_device_count=8')
  p = subprocess.run([sys.executable, '-c', _MESH_SCRIPT],
                     cwd=root,
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=900)
  assert p.returncode == 0, p.stderr[-2000:]
  out = json.loads(p.stdout.split('RESULT ', 1)[1])
  assert out['devices'] == 8
  one, mesh = out['one'], out['mesh']
  assert len(mesh['acc']) == 5
  np.testing.assert_allclose(mesh['acc'], one['acc'], atol=2.5 / 359)
  for a, b in zip(one['leaves'], mesh['leaves']):
    for x, y in zip(a, b):
      np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


_PROCESS_SCRIPT = '''
import json, sys
from esnac_jax import distributed
if len(sys.argv) > 1:  # else: one process, one device (the reference)
  distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
import jax, jax.numpy as jnp, numpy as np
from esnac_jax.arch import SamplerConfig, get_teacher, sample
from esnac_jax.data import load_dataset
from esnac_jax.models import make_model
from esnac_jax.train import LossConfig, OptimConfig, TrainConfig
from esnac_jax.train.masked import candidate_mesh, distill_masked
t = get_teacher('resnet18', num_classes=10, in_channels=1, width=0.125,
                input_size=8)
tv = make_model(t).init(jax.random.key(0), jnp.zeros((1,) + t.input_shape))
rng = np.random.default_rng(0)
kids = [sample(t, rng, SamplerConfig()) for _ in range(3)]
kids = distributed.agree(kids)
cfg = TrainConfig(epochs=1, batch_size=256, loss=LossConfig('mse'),
                  optim=OptimConfig(name='sgd', lr=0.05, momentum=0.9))
mesh = candidate_mesh() if len(sys.argv) > 1 else None
r = distill_masked(t, tv, kids, load_dataset('digits'), cfg, 3, vmap=True,
                   mesh=mesh)
out = {'processes': jax.process_count(),
       'mesh': dict(mesh.shape) if mesh else None,
       'acc': [x.val_acc for x in r], 'leaves': [
           [np.asarray(l).ravel()[:64].tolist()
            for l in jax.tree_util.tree_leaves(x.variables)] for x in r]}
print('RESULT', json.dumps(out), flush=True)
if mesh is not None:  # what a multi-process run refuses, before any work
  import dataclasses, tempfile
  from configs import digits
  from esnac_jax.job import pipeline
  errors = {}
  try:
    distill_masked(t, tv, kids, load_dataset('digits'),
                   dataclasses.replace(cfg, batch_size=255), 3, vmap=True,
                   mesh=mesh)
  except ValueError as e:
    errors['batch'] = str(e)
  c = digits.get_config()
  c.distill.path = 'materialised'
  try:
    pipeline.run(c, tempfile.mkdtemp(), log=lambda s: None)
  except ValueError as e:
    errors['path'] = str(e)
  print('ERRORS', json.dumps(errors), flush=True)
'''


@pytest.mark.slow
def test_two_processes_match_one_device(tmp_path):
  """jax.distributed with 2 CPU processes x 2 devices: each process feeds
  half of every minibatch and holds its share of the candidates; both get
  the results of one process on one device (3 candidates, padded to 4)."""
  import json
  import socket
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  env = dict(os.environ,
             JAX_PLATFORMS='cpu',
             JAX_DISABLE_MOST_OPTIMIZATIONS='true',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  runs = [[f'localhost:{port}', '0'], [f'localhost:{port}', '1'], []]
  # Files, not pipes: a process blocked on a full pipe that nobody reads
  # yet never reaches the shutdown barrier, and the other one aborts.
  logs = [
      (tmp_path / f'p{i}.out', tmp_path / f'p{i}.err') for i in range(len(runs))
  ]
  procs = []
  for args, (out, err) in zip(runs, logs):
    with open(out, 'w') as fo, open(err, 'w') as fe:
      procs.append(
          subprocess.Popen([sys.executable, '-c', _PROCESS_SCRIPT, *args],
                           cwd=root,
                           env=env,
                           stdout=fo,
                           stderr=fe,
                           text=True))
  outs = []
  for p, (out, err) in zip(procs, logs):
    p.wait(timeout=900)
    assert p.returncode == 0, err.read_text()[-2000:]
    text = out.read_text()
    outs.append(json.loads(text.split('RESULT ', 1)[1].split('\n')[0]))
    if 'ERRORS ' in text:
      outs[-1]['errors'] = json.loads(text.split('ERRORS ', 1)[1])
  *dist, one = outs
  assert [o['processes'] for o in outs] == [2, 2, 1]
  assert [o['mesh'] for o in dist] == [{'data': 2, 'candidates': 2}] * 2
  for o in dist:
    assert 'must divide over the 2 processes' in o['errors']['batch']
    assert "set --config.distill.path=masked_vmap" in o['errors']['path']
    assert len(o['acc']) == 3
    np.testing.assert_allclose(o['acc'], one['acc'], atol=2.5 / 359)
    for a, b in zip(one['leaves'], o['leaves']):
      for x, y in zip(a, b):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


def _custom_teacher(rng, concat: bool):
  """A small random ArchBuilder teacher: residual, depthwise, plain and
  downsampling blocks (ReLU or ReLU6), and with `concat` a two-branch
  block whose outputs are concatenated."""
  from esnac_jax.arch import INPUT, ArchBuilder
  b = ArchBuilder((8, 8, 3), 'custom')

  def cbr(x, c, k=3, s=1, groups=1, relu=True, name=''):
    x = b.bn(b.conv(x, c, k, s, k // 2, groups=groups, name=name),
             name=name + '.bn')
    clip = float(rng.choice([0.0, 6.0]))
    return b.relu(x, name=name + '.r', clip=clip) if relu else x

  x, c, hw = cbr(INPUT, 8, name='stem'), 8, 8
  kinds = ['res', 'dw', 'down', 'plain']
  for i, kind in enumerate(
      rng.permutation(kinds)[:3].tolist() + (['branch'] if concat else [])):
    n = f'b{i}'
    if kind == 'res':
      h = cbr(cbr(x, c, name=n + 'a'), c, relu=False, name=n + 'b')
      x = b.relu([h, x], name=n + '.sum')
    elif kind == 'dw':
      x = cbr(cbr(x, c, groups=c, name=n + 'dw'), c, 1, name=n + 'pw')
    elif kind == 'down':
      x, c, hw = cbr(x, 2 * c, s=2, name=n + 'd'), 2 * c, hw // 2
    elif kind == 'plain':
      x = cbr(x, c, name=n + 'p')
    else:
      x = b.concat(
          [cbr(x, c // 2, 1, name=n + 'l'),
           cbr(x, c // 2, name=n + 'r')],
          name=n + '.cat')
      x = cbr(x, c, name=n + 'after')
  x = b.flatten(b.avgpool(x, hw, 1, name='gap'), name='flat')
  b.linear(x, 5, name='fc')
  return b.build()


def test_custom_teachers_masked_equal_materialised():
  """Random teachers of one's own that the masked path accepts compute
  every child exactly as the materialised path does."""
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    for k in range(3):
      teacher = _custom_teacher(rng, concat=False)
      check_maskable(teacher)
      tvars = jax.tree_util.tree_map(lambda a: 0.3 * a.astype(np.float64),
                                     random_variables(teacher, seed=k))
      tvars['batch_stats'] = jax.tree_util.tree_map(lambda a: np.abs(a) + 0.5,
                                                    tvars['batch_stats'])
      mvars = masked_variables(tvars, 'inherit')
      masked = MaskedNet(teacher, jnp.float64)
      x = rng.normal(size=(2,) + teacher.input_shape)
      cfg = SamplerConfig(skip_probs=(0.05, 0.3))
      for _ in range(4):
        child = mutate(sample(teacher, rng, cfg), teacher, rng)
        want = make_model(child, jnp.float64).apply(
            inherit(teacher, child, tvars, 'first', 'inherit'), x)
        got = masked.apply(mvars, x, candidate_masks(teacher, child))
        assert np.max(np.abs(got -
                             want)) <= 1e-9 * (float(np.max(np.abs(want))) +
                                               1e-12), teacher.to_json()


def test_a_teacher_whose_children_move_concat_channels_is_refused():
  """Removing the layer after a concat (or a skip into it) hands a child
  channels that lie elsewhere in the teacher's tensors: the masked path
  refuses the teacher, and `auto` takes the materialised one."""
  from esnac_jax.job.evaluate import resolve_path
  teacher = _custom_teacher(np.random.default_rng(1), concat=True)
  assert relaid_channels(teacher)
  with pytest.raises(ValueError,
                     match=r"masked path cannot run custom: in a child, .* "
                     r"lie elsewhere in the teacher's tensors"):
    check_maskable(teacher)
  assert resolve_path('auto', teacher, 'first', 'gpu') == 'materialised'
  for name in MASKABLE:
    assert relaid_channels(tiny_teacher(name)) == ()
