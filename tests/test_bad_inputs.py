"""Every bad input is refused before any work, in one line, with exit
status 2, and leaves an existing workdir as it was, byte for byte.

The table runs `python -m esnac_jax.main` against a finished tiny run's
workdir: config values, config files, flags, and damaged checkpoints of
every kind; Arch documents are checked through their public API.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from esnac_jax.arch import Arch, ArchBuilder, INPUT, get_teacher
from conftest import job_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = job_env()
TINY = [
    '--config.teacher.width=0.125', '--config.teacher.train.epochs=2',
    '--config.search.steps=2', '--config.search.candidates_per_step=2',
    '--config.search.esnac.pool_size=16', '--config.search.surrogate.hidden=8',
    '--config.search.surrogate.num_layers=1',
    '--config.search.surrogate.max_steps=5',
    '--config.search.esnac.init_random=2', '--config.distill.epochs=1',
    '--config.final.epochs=1', '--config.final.top_n=1'
]


def _onnx_bytes(op='Relu', classes=10):
  """A small ONNX classifier of 8x8 grey images: conv, `op`, global
  pooling, a Linear."""
  import numpy as np
  from onnx import TensorProto, helper, numpy_helper
  inits = [
      numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), 'w'),
      numpy_helper.from_array(np.ones((classes, 4), np.float32), 'fc')
  ]
  nodes = [
      helper.make_node('Conv', ['x', 'w'], ['c'],
                       name='conv',
                       kernel_shape=[3, 3],
                       pads=[1, 1, 1, 1]),
      helper.make_node(op, ['c'], ['a'], name='act'),
      helper.make_node('GlobalAveragePool', ['a'], ['g'], name='gap'),
      helper.make_node('Flatten', ['g'], ['f'], name='flat'),
      helper.make_node('Gemm', ['f', 'fc'], ['y'], name='fc', transB=1)
  ]
  graph = helper.make_graph(
      nodes, 'net',
      [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 1, 8, 8])],
      [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', classes])],
      inits)
  return helper.make_model(graph).SerializeToString()


# Lines a run prints once it has started work: none may appear on refusal.
WORK_STARTED = ('data:', 'teacher:', 'step ', 'final ')


def _cmd(workdir, *args, config='configs/digits.py', tiny=True):
  head = [f'--config={config}'] if config else []
  return [
      sys.executable, '-m', 'esnac_jax.main', *head, f'--workdir={workdir}',
      *(TINY if tiny else []), *args
  ]


def _run(cmd, cwd=ROOT):
  return subprocess.run(cmd,
                        cwd=cwd,
                        env=ENV,
                        capture_output=True,
                        text=True,
                        timeout=600)


def _digest(path):
  """Every file under `path` with the hash of its bytes."""
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      with open(p, 'rb') as fh:
        out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
  return out


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  """A finished tiny run: teacher, search, embedding, final stage."""
  workdir = str(tmp_path_factory.mktemp('finished') / 'w')
  p = _run(_cmd(workdir))
  assert p.returncode == 0, p.stderr[-3000:]
  for part in ('teacher', 'search', 'embedding', 'final-step2', 'results.json'):
    assert os.path.exists(os.path.join(workdir, part)), part
  return workdir


def _files(tmp):
  """Config files with mistakes, written under `tmp`."""
  files = {
      'syntax.py': 'import ml_collections\n\ndef get_config(:\n  pass\n',
      'no_get_config.py': 'CONFIG = 1\n',
      'raises.py': ('from configs import digits\n\ndef get_config():\n'
                    '  return undefined_name\n'),
      'import_error.py': 'import no_such_module_here\n',
      'returns_dict.py': 'def get_config():\n  return {"seed": 1}\n',
  }
  for name, text in files.items():
    with open(os.path.join(tmp, name), 'w') as f:
      f.write(text)
  return {name: os.path.join(tmp, name) for name in files}


# (flags, or a config file key, pattern of the one line)
CASES = [
    # config files and flags
    (dict(config='configs/nope.py'), r'config file configs/nope\.py does '
     'not exist'),
    (dict(file='syntax.py'), r'syntax error in config file .*syntax\.py:3'),
    (dict(file='no_get_config.py'), 'has no get_config'),
    (dict(file='raises.py'), r"get_config\(\) of .*raises\.py fails: "
     "NameError"),
    (dict(file='import_error.py'), r'import_error\.py:1 fails to load: '
     'ModuleNotFoundError'),
    (dict(file='returns_dict.py'), 'returned dict, not a ConfigDict'),
    (dict(config='configs/digits.py:fathful'), "unknown config argument "
     "'fathful'"),
    (dict(args=['--config.search.stpes=3']), r'unknown config key '
     r'--config\.search\.stpes; did you mean --config\.search\.steps'),
    (dict(args=['--config.teacher.nam=resnet18']), r'did you mean '
     r'--config\.teacher\.name'),
    (dict(args=['--config.seed.x=3']), r'config\.seed is a value'),
    (dict(args=['--config.search.steps=many']), r'--config\.search\.steps'),
    (dict(args=['--config.seed=1.5']), r'--config\.seed'),
    (dict(args=['--nosuchflag']), 'nosuchflag'),
    (dict(args=['extra_word']), 'unexpected arguments'),
    (dict(config=None, tiny=False), '--config is required'),
    (dict(args=[
        '--config.distributed.initialize=True',
        '--config.distributed.num_processes=2'
    ]), 'coordinator_address, num_processes and process_id together'),
    # config values
    (dict(args=['--config.seed=-1']), r'config\.seed=-1 must be an integer'),
    (dict(args=['--config.preset=fancy']), r"config\.preset='fancy'"),
    (dict(args=['--config.dataset=mnist']), "unknown dataset 'mnist'"),
    (dict(args=['--config.teacher.name=alexnet']), "unknown teacher "
     "'alexnet'"),
    (dict(args=['--config.teacher.name=no_such_mod:build']),
     "teacher builder 'no_such_mod:build' cannot be loaded"),
    (dict(args=['--config.teacher.width=0']), r'config\.teacher\.width'),
    (dict(args=['--config.teacher.width=nan']), r'config\.teacher\.width'),
    (dict(args=['--config.teacher.width=1000']), r'training the teacher '
     r'needs at least .* GiB .*config\.teacher\.width=1000'),
    (dict(args=['--config.teacher.train.batch_size=0']),
     r'config\.teacher\.train'),
    (dict(args=['--config.search.searcher=tpe']), "unknown searcher 'tpe'"),
    (dict(args=['--config.search.steps=0']), r'config\.search\.steps must '
     'be >= 1'),
    (dict(args=['--config.search.candidates_per_step=0']),
     r'config\.search\.candidates_per_step'),
    (dict(args=['--config.search.esnac.pool_size=1000000000']),
     r'config\.search\.esnac\.pool_size=1000000000 is beyond'),
    (dict(args=['--config.search.esnac.pool_size=0']),
     r'config\.search\.esnac: pool_size'),
    (dict(args=['--config.search.esnac.acquisition=pi']),
     "unknown acquisition 'pi'"),
    (dict(args=['--config.search.esnac.features=pixels']),
     r'config\.search\.esnac.*pixels'),
    (dict(args=['--config.search.esnac.random_frac=1.5']),
     r'random_frac must be in \[0, 1\]'),
    (dict(args=['--config.search.esnac.fidelity=best']),
     "unknown fidelity 'best'"),
    (dict(args=['--config.compile_cache=']),
     r"config\.compile_cache='' must be auto, off or a folder"),
    (dict(args=['--config.data_feed=gpu']),
     r"config\.data_feed must be one of auto, host, device, got 'gpu'"),
    (dict(args=['--config.search.surrogate.hidden=0']),
     r'config\.search\.surrogate: hidden must be >= 1'),
    (dict(args=['--config.search.surrogate.hidden=100000']),
     r'config\.search\.surrogate\.hidden=100000 is beyond'),
    (dict(args=['--config.search.surrogate.objective=elbo']),
     "unknown surrogate objective 'elbo'"),
    (dict(args=['--config.search.surrogate.init_from=/no/such/emb']),
     r'no saved embedding at /no/such/emb'),
    (dict(args=['--config.search_space.group_mode=coarse']),
     r'config\.search_space.*coarse'),
    (dict(args=[
        '--config.search.searcher=evolution',
        '--config.search.evolution.tournament=100'
    ]), r'tournament=100 must be in \[1, population=24\]'),
    (dict(args=['--config.distill.select=random']),
     r"config\.distill\.select='random' is not one of first, l1"),
    (dict(args=['--config.distill.bn_stats=keep']),
     r"config\.distill\.bn_stats='keep' is not one of reset, inherit"),
    (dict(args=['--config.distill.path=fast']), "unknown distill.path "
     "'fast'"),
    (dict(args=['--config.distill.path=masked', '--config.distill.select=l1']),
     r'needs the materialised'),
    (dict(args=['--config.distill.batch_size=5000']),
     r'config\.distill\.batch_size=5000 is larger than the digits training '
     r'split \(1078 images\)'),
    (dict(args=['--config.final.batch_size=2000']),
     r'config\.final\.batch_size=2000'),
    (dict(args=['--config.distill.epochs=0']), r'config\.distill: epochs '
     'must be >= 1'),
    (dict(args=['--config.distill.optimizer=rmsprop']),
     r'config\.distill.*rmsprop'),
    (dict(args=['--config.distill.schedule=linear']),
     r'config\.distill.*linear'),
    (dict(args=['--config.distill.loss=hinge']), r'config\.distill.*hinge'),
    (dict(args=['--config.distill.dtype=float16']),
     r'config\.distill.*float16'),
    (dict(args=['--config.distill.lr=-1.0']), r'config\.distill.*lr'),
    (dict(args=['--config.distill.lr=inf']), r'config\.distill: lr must be '
     'a finite number > 0, got inf'),
    (dict(args=['--config.teacher.train.momentum=1.0']),
     r'config\.teacher\.train: momentum must be in \[0, 1\)'),
    (dict(args=['--config.distill.temperature=nan']), r'config\.distill: '
     'temperature must be a finite number > 0, got nan'),
    (dict(args=['--config.final.boundaries=(3,2)']), r'config\.final: '
     r'boundaries must be increasing whole epochs >= 1, got \(3, 2\)'),
    (dict(
        args=['--config.distill.epochs=4', '--config.distill.halving=(2, 4)']),
     r'config\.distill: halving must be increasing epochs within 1\.\.3'),
    (dict(args=['--config.distill.halving=(1,)']),
     r'config\.distill: halving needs epochs >= 2'),
    (dict(args=[
        '--config.distill.stop_hopeless=True', '--config.distill.epochs=2',
        '--config.search.objective=pareto'
    ]), r"stop_hopeless=True needs one score to beat; with search\.objective="
     r"'pareto'"),
    (dict(args=[
        '--config.distill.stop_hopeless=True', '--config.distill.epochs=1'
    ]), r'stop_hopeless=True stops candidates after an epoch before the '
     r'last; with distill\.epochs=1 there is none'),
    (dict(args=['--config.xla_cpu_fast_compile=fast']),
     r"xla_cpu_fast_compile='fast' is not one of auto, on, off"),
    (dict(args=['--config.final.top_n=-1']), r'config\.final\.top_n must '
     'be >= 0'),
    (dict(args=['--config.constraints.max_params=10']),
     r'config\.constraints\.max_params=10 admits none of 1000 random '
     'children'),
    (dict(args=['--config.constraints.max_flops=-5']),
     r'constraints\.max_flops must be >= 1'),
    (dict(args=['--config.constraints.min_acc=2.0']),
     r'constraints\.min_acc is a fraction'),
    # your own teacher
    (dict(args=[
        '--config.teacher.arch=/no/such.json', '--config.teacher.width=1.0'
    ]), r'teacher\.arch=/no/such\.json cannot be read'),
    (dict(write={'t.json': b'{"layers": ['},
          args=[
              '--config.teacher.arch={tmp}/t.json', '--config.teacher.width=1.0'
          ]), r'teacher\.arch=.*t\.json: an Arch document is not JSON'),
    (dict(write={
        't.json':
            json.dumps({
                'format':
                    'esnac_jax.arch/1',
                'input_shape': [8, 8, 1],
                'edges': [],
                'layers': [{
                    'kind': 'conv',
                    'in_shape': [8, 8, 1],
                    'out_shape': [8, 8, 4],
                    'kernel': 'three'
                }]
            }).encode()
    },
          args=[
              '--config.teacher.arch={tmp}/t.json', '--config.teacher.width=1.0'
          ]), r"layer 0 \(conv\): kernel must be an integer, got 'three'"),
    (dict(args=[
        '--config.teacher.arch=configs/../README.md',
        '--config.teacher.width=1.0'
    ]), 'not JSON'),
    (dict(write={'t.onnx': b'garbage'},
          args=[
              '--config.teacher.arch={tmp}/t.onnx', '--config.teacher.width=1.0'
          ]), r't\.onnx is not an ONNX model'),
    (dict(write={'t.onnx': _onnx_bytes('Sigmoid')},
          args=[
              '--config.teacher.arch={tmp}/t.onnx', '--config.teacher.width=1.0'
          ]), r"ONNX node 'act' \(Sigmoid\) has no esnac_jax layer"),
    (dict(write={'t.onnx': _onnx_bytes(classes=3)},
          args=[
              '--config.teacher.arch={tmp}/t.onnx', '--config.teacher.width=1.0'
          ]), r"t\.onnx describes a network from \(8, 8, 1\) to \(3,\); "
     r"dataset 'digits' needs"),
    (dict(args=[
        '--config.teacher.onnx=a.onnx', '--config.teacher.arch=b.json',
        '--config.teacher.width=1.0'
    ]), r'teacher\.arch=b\.json and teacher\.onnx=a\.onnx both describe'),
    (dict(args=['--config.teacher.weights=/no/such.msgpack']),
     r'config\.teacher\.weights: no weights at /no/such\.msgpack'),
    (dict(write={'w.msgpack': b'\x81\xa1a\x01'},
          args=['--config.teacher.weights={tmp}/w.msgpack']),
     r'config\.teacher\.weights: the weights at .*w\.msgpack lack '),
    (dict(write={'w.msgpack': b'garbage bytes'},
          args=['--config.teacher.weights={tmp}/w.msgpack']),
     r'the weights at .*w\.msgpack are unreadable'),
    # your own data
    (dict(args=['--config.dataset=npz:/no/data.npz']),
     r'no dataset file at /no/data\.npz'),
    (dict(write={'d.npz': b'not a zip file'},
          args=['--config.dataset=npz:{tmp}/d.npz']),
     r'd\.npz is not a readable \.npz file'),
    (dict(write={'t.onnx': b'unread'},
          args=['--config.teacher.onnx={tmp}/t.onnx']),
     r'teacher\.onnx=.*t\.onnx is used as written; leave '
     r'config\.teacher\.width at 1\.0'),
    (dict(args=['--config.dataset=tfds:no_such_dataset_xyz']),
     r'tfds:no_such_dataset_xyz: TFDS does not know this dataset'),
    (dict(args=['--config.dataset=tfds:imdb_reviews']),
     r'tfds:imdb_reviews is not an image-classification dataset'),
    (dict(args=['--config.image_size=-3']),
     r'config\.image_size=-3 must be a whole number of pixels'),
    (dict(args=['--config.search.objective=target']),
     r"config\.search\.objective='target' maximises accuracy under a size "
     r'limit'),
    (dict(args=['--config.search.objective=accuracy']),
     r"config\.search\.objective='accuracy' is not one of reward, target, "
     'pareto, pareto_flops'),
    (dict(args=['--config.final.indices=2,99']),
     r'config\.final\.indices=.*candidate 99 does not exist'),
    (dict(args=['--config.final.indices=best']),
     r"config\.final\.indices='best': 'best' is not a candidate index"),
    # the workdir
    (dict(args=['--config.search.esnac.pool_size=32']),
     r'holds a search made with a different config \(search\.esnac\.'
     r'pool_size: 16 -> 32\)'),
]


def _case_id(case):
  spec, _ = case
  return (spec.get('file') or ' '.join(spec.get('args', [])) or
          str(spec.get('config')))[:60] + ''.join(spec.get('write', ()))


@pytest.mark.slow
@pytest.mark.parametrize('case', CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_refused_before_any_work(finished, tmp_path, case):
  spec, pattern = case
  before = _digest(finished)
  config = spec.get('config', 'configs/digits.py')
  if 'file' in spec:
    config = _files(str(tmp_path))[spec['file']]
  for name, data in spec.get('write', {}).items():
    (tmp_path / name).write_bytes(data)
  args = [a.format(tmp=tmp_path) for a in spec.get('args', [])]
  p = _run(_cmd(finished, *args, config=config, tiny=spec.get('tiny', True)))
  assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
  lines = p.stderr.strip().splitlines()
  assert len(lines) == 1, p.stderr[-3000:]
  assert lines[0].startswith('error: '), lines
  assert re.search(pattern, lines[0]), lines[0]
  assert not any(
      line.startswith(WORK_STARTED) for line in p.stdout.splitlines()), p.stdout
  assert _digest(finished) == before


@pytest.mark.slow
def test_verbose_shows_the_traceback(finished):
  p = _run(_cmd(finished, '--config.search.stpes=3', '--verbose'))
  assert p.returncode == 2
  assert 'Traceback' in p.stderr
  assert p.stderr.strip().splitlines()[-1].startswith('error: unknown config')


def test_a_nonexistent_workdir_is_not_created_on_refusal(tmp_path):
  workdir = tmp_path / 'new'
  p = _run(_cmd(str(workdir), '--config.distill.select=random'))
  assert p.returncode == 2 and 'distill.select' in p.stderr
  assert not workdir.exists()


# ---- damaged checkpoints: each named by its path, with what to delete ----


def _corrupt_json(path):
  with open(path, 'wb') as f:
    f.write(b'\xff\xfe garbage \x00')


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(max(1, os.path.getsize(path) // 3))


def _find(root, predicate):
  for r, _, files in os.walk(root):
    for f in sorted(files):
      p = os.path.join(r, f)
      if predicate(p):
        return p
  raise AssertionError(f'no matching file under {root}')


def _meta_file(directory):
  return _find(directory,
               lambda p: p.endswith(os.path.join('meta', 'metadata')))


def _array_file(directory, tree):
  """The largest data file of array tree `tree` (the weights' bytes)."""
  files = []
  for r, _, names in os.walk(directory):
    if os.sep + tree in r:
      files += [os.path.join(r, n) for n in names]
  return max(files, key=os.path.getsize)


DAMAGE = [
    ('teacher', lambda w: _corrupt_json(_meta_file(f'{w}/teacher')),
     r'teacher checkpoint at .*/teacher is unreadable.*delete .*/teacher'),
    ('teacher', lambda w: _truncate(_array_file(f'{w}/teacher', 'variables')),
     r'teacher checkpoint at .*/teacher is unreadable.*delete .*/teacher'),
    ('final', lambda w: _corrupt_json(_meta_file(f'{w}/final-step2')),
     r'final-training checkpoint .*/final-step2/0 is unreadable.*delete '
     r'.*/final-step2/0'),
    ('final', lambda w: _truncate(_array_file(f'{w}/final-step2', 'variables')),
     r'final-training checkpoint .*/final-step2/0 is unreadable'),
    ('search',
     lambda w: [_corrupt_json(_meta_file(f'{w}/search/{s}')) for s in (1, 2)],
     r'no readable search checkpoint in .*/search.*delete that directory'),
]


@pytest.mark.slow
@pytest.mark.parametrize('kind,damage,pattern',
                         DAMAGE,
                         ids=[f'{d[0]}-{i}' for i, d in enumerate(DAMAGE)])
def test_a_damaged_checkpoint_is_named(finished, tmp_path, kind, damage,
                                       pattern):
  workdir = str(tmp_path / 'w')
  shutil.copytree(finished, workdir)
  damage(workdir)
  before = _digest(workdir)
  p = _run(_cmd(workdir))
  assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
  lines = p.stderr.strip().splitlines()
  assert len(lines) == 1 and re.search(pattern, lines[0]), p.stderr[-2000:]
  assert 'training candidate' not in p.stdout
  assert 'teacher: epoch' not in p.stdout
  assert _digest(workdir) == before


@pytest.mark.slow
def test_a_damaged_embedding_is_named_when_reused(finished, tmp_path):
  emb = str(tmp_path / 'emb')
  shutil.copytree(os.path.join(finished, 'embedding'), emb)
  _corrupt_json(_meta_file(emb))
  p = _run(
      _cmd(str(tmp_path / 'w'), f'--config.search.surrogate.init_from={emb}'))
  assert p.returncode == 2
  assert re.search(r'embedding at .*/emb is unreadable', p.stderr), p.stderr
  assert not (tmp_path / 'w').exists()


@pytest.mark.slow
def test_a_finished_rerun_writes_nothing(finished):
  before = _digest(finished)
  p = _run(_cmd(finished))
  assert p.returncode == 0, p.stderr[-2000:]
  assert 'already trained' in p.stdout
  assert _digest(finished) == before


# ---- Arch documents --------------------------------------------------------


def _doc():
  return json.loads(
      get_teacher('resnet18', num_classes=10, width=0.125,
                  input_size=8).to_json())


def _set(path, value):

  def change(d):
    *parents, leaf = path
    for p in parents:
      d = d[p]
    if value is _DELETE:
      del d[leaf]
    else:
      d[leaf] = value

  return change


_DELETE = object()
ARCH_DOCS = [
    (_set(['layers'], _DELETE), 'lacks layers'),
    (_set(['edges'], _DELETE), 'lacks edges'),
    (_set(['format'], 'other/1'), 'not an esnac_jax Arch'),
    (_set(['extra'], 1), r"unknown fields \['extra'\]"),
    (_set(['layers'], {}), 'layers must be a list'),
    (_set(['layers', 3, 'out_channels'], '8'), r'layer 3 \(conv\): '
     "out_channels must be an integer, got '8'"),
    (_set(['layers', 3, 'kernel'], 3.0), r'layer 3 \(conv\): kernel must '
     'be an integer'),
    (_set(['layers', 3, 'bias'], 'no'), r'layer 3 \(conv\): bias must be '
     'true or false'),
    (_set(['layers', 2, 'kind'], _DELETE), "layer 2: lacks the field "
     "'kind'"),
    (_set(['layers', 2, 'kind'], 'gelu'), "unknown layer kind 'gelu'"),
    (_set(['layers', 2, 'in_shape'], 'x'), r'layer 2 \(.*\): in_shape must '
     'be a list of integers'),
    (_set(['layers', 2, 'colour'], 1), r"layer 2: unknown fields "
     r"\['colour'\]"),
    (_set(['layers', 2], [1, 2]), 'layer 2: expected an object'),
    (_set(['edges'], [[0, 'a']]), r'edges must be \[source, target\] pairs'),
    (_set(['edges', 0], [0, 999]), 'refers to a missing layer 999'),
    (_set(['input_shape'], [8, 8]), r'input_shape must be \(H, W, C\)'),
    (_set(['layers', 3, 'out_channels'], 7), r'layer 6 .*in_channels=8 but '
     'the input has 7 channels'),
    (_set(['layers', 3, 'out_shape'], [8, 8, 9]), r'layer 3 .*declared '
     r'shapes .* -> \(8, 8, 9\)'),
]


@pytest.mark.parametrize('change,message', ARCH_DOCS)
def test_bad_arch_documents_name_the_layer_and_field(change, message):
  doc = _doc()
  change(doc)
  with pytest.raises(ValueError, match=message):
    Arch.from_json(json.dumps(doc))


def test_arch_from_json_of_text_that_is_not_json():
  with pytest.raises(ValueError, match='not JSON'):
    Arch.from_json('{"layers": [')


@pytest.mark.parametrize('call,message', [
    (lambda b: b.conv(INPUT, '8', 3), "out_channels must be an integer"),
    (lambda b: b.conv(INPUT, 8, 3, bias=1), 'bias must be true or false'),
    (lambda b: b.add('pool', INPUT), "unknown layer kind 'pool'"),
    (lambda b: b.add('conv', INPUT, widht=3), r"unknown fields \['widht'\]"),
    (lambda b: [b.conv(INPUT, 4, 3), b.relu(5)],
     r'layer 1 \(relu\): source 5 is not an earlier layer'),
    (lambda b: b.conv(INPUT, 4, 9), 'does not fit'),
])
def test_the_builder_names_the_layer_and_field(call, message):
  with pytest.raises(ValueError, match=message):
    call(ArchBuilder((8, 8, 1)))
