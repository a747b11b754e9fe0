"""bench.compare: the score cache, resuming, several teachers, bad input."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from configs import digits
from esnac_jax.bench import compare as C
from esnac_jax.bench import summaries as S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_teacher_folder_names():
  assert C.teacher_dir('esnac_jax.bench.teachers:vgg_chain') == \
      'esnac_jax.bench.teachers_vgg_chain'


@pytest.mark.slow
def test_compare_over_teachers(tmp_path):
  """Two teachers, one a user-style builder: a folder and a summary each,
  and the scoreboard; a bad teacher name fails before any training."""
  cfg, wd = _tiny_config(), str(tmp_path / 'teachers')
  names = ['resnet18', 'esnac_jax.bench.teachers:vgg_chain']
  with pytest.raises(ValueError, match="unknown teacher 'resnet99'"):
    C.compare_teachers(cfg,
                       wd, ['resnet18', 'resnet99'], ['esnac', 'random'],
                       1,
                       4, [4],
                       log=lambda s: None)
  assert not os.path.exists(wd)
  doc = C.compare_teachers(cfg,
                           wd,
                           names, ['esnac', 'random'],
                           seeds=1,
                           evaluations=4,
                           milestones=[2, 4],
                           log=lambda s: None)
  assert set(doc['summaries']) == set(names)
  assert doc['teacher_info'][names[1]]['name'] == 'vgg_chain'
  for name in names:
    assert os.path.exists(os.path.join(wd, C.teacher_dir(name), 'compare.json'))
    assert doc['scoreboard']['4'][name] in ('win', 'tie', 'loss')
  with open(os.path.join(wd, 'teachers.json')) as f:
    assert json.load(f)['scoreboard'] == doc['scoreboard']


def test_merged_config_and_unknown_keys():
  cfg = digits.get_config()
  m = C.merged_config(cfg)
  assert m.teacher.width == 0.125 and m.distill.epochs == 1
  assert cfg.teacher.width == 0.25  # the original config is untouched
  cfg.compare.override = ml_collections.ConfigDict({'distill': {'epochz': 2}})
  with pytest.raises(ValueError, match='override.distill.epochz'):
    C.merged_config(cfg)


def _tiny_config():
  cfg = digits.get_config()
  cfg.teacher.train.epochs = 2
  cfg.search.candidates_per_step = 3
  cfg.search.esnac.pool_size = 40
  cfg.search.surrogate.update(hidden=8, num_layers=1, max_steps=4)
  cfg.search.evolution.population = 4
  cfg.search.evolution.tournament = 2
  cfg.compare.override.teacher.width = 0.0625
  cfg.compare.override.distill.batch_size = 256
  cfg.compare.faithful.update(hidden=8, num_layers=1, pool_size=10, max_steps=4)
  return cfg


@pytest.mark.slow
def test_compare_end_to_end_and_resume(tmp_path):
  cfg, wd = _tiny_config(), str(tmp_path / 'cmp')
  logs = []
  doc = C.compare(cfg,
                  wd,
                  C.METHODS,
                  seeds=2,
                  evaluations=6,
                  milestones=[3, 6],
                  log=logs.append)
  assert doc['format'] == C.FORMAT and len(doc['runs']) == 10
  with open(os.path.join(wd, 'compare.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  for run in doc['runs']:
    assert len(run['rewards']) == 6
    assert all(0 <= r <= 1 for r in run['rewards'])
  for m, row in doc['summary']['methods'].items():
    best6 = [max(r['rewards']) for r in doc['runs'] if r['method'] == m]
    assert row['best']['6']['mean'] == pytest.approx(np.mean(best6))
  # one score per distinct candidate, shared by every method that drew it
  with open(os.path.join(wd, 'scores.jsonl')) as f:
    keys = [json.loads(line)['key'] for line in f]
  assert len(keys) == len(set(keys)) == sum(
      r['trained_now'] for r in doc['runs'])
  assert any('run 10/10' in s for s in logs)

  # Rerun: nothing left to do, the same document.
  again = C.compare(cfg, wd, C.METHODS, 2, 6, [3, 6], log=logs.append)
  assert again['runs'] == doc['runs']
  # A lost run is replayed from the score cache: same rewards, no training.
  with open(os.path.join(wd, 'compare.json')) as f:
    saved = json.load(f)
  saved['runs'] = [
      r for r in saved['runs']
      if not (r['method'] == 'esnac' and r['seed'] == 128)
  ]
  with open(os.path.join(wd, 'compare.json'), 'w') as f:
    json.dump(saved, f)
  replay = C.compare(cfg, wd, C.METHODS, 2, 6, [3, 6], log=logs.append)
  new = [
      r for r in replay['runs'] if r['method'] == 'esnac' and r['seed'] == 128
  ][0]
  old = [r for r in doc['runs'] if r['method'] == 'esnac' and r['seed'] == 128
        ][0]
  assert new['rewards'] == old['rewards'] and new['trained_now'] == 0

  # A comparison saved before later keys existed resumes with their
  # defaults, and where compiles are cached may change.
  with open(os.path.join(wd, 'compare.json')) as f:
    saved = json.load(f)
  old_cfg = saved['settings']['config']
  del old_cfg['distill']['halving'], old_cfg['search']['esnac']['fidelity']
  del old_cfg['compile_cache'], old_cfg['compare']['batch_scoring']
  del old_cfg['data_feed']
  with open(os.path.join(wd, 'compare.json'), 'w') as f:
    json.dump(saved, f)
  cfg.compile_cache, cfg.data_feed = 'off', 'host'
  assert C.compare(cfg, wd, C.METHODS, 2, 6, [3, 6])['runs'] == replay['runs']

  cfg.compare.override.distill.lr = 1e-2
  with pytest.raises(
      ValueError,
      match=
      r'another config \(compare\.override\.distill\.lr: .*; distill\.lr: 0\.003 -> 0\.01\)'
  ):
    C.compare(cfg, wd, C.METHODS, 2, 6, [3, 6], log=logs.append)


@pytest.mark.slow
@pytest.mark.parametrize('bench,flag,message', [
    ('compare', '--methods=esnac,bogus', 'unknown methods'),
    ('compare', '--milestones=400', 'outside 1..160'),
    ('transfer', '--milestones=10,400', 'milestones within 1..40'),
])
def test_cli_bad_input(tmp_path, bench, flag, message):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  p = subprocess.run([
      sys.executable, '-m', f'esnac_jax.bench.{bench}',
      '--config=configs/digits.py', f'--workdir={tmp_path}', flag
  ],
                     cwd=ROOT,
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=300)
  assert p.returncode == 2
  assert message in p.stderr and 'Traceback' not in p.stderr


@pytest.mark.slow
def test_transfer_benchmark_end_to_end(tmp_path):
  from esnac_jax.bench import transfer as T
  cfg = _tiny_config()
  # the masked ResNet-34 wires in all 1,482 possible skips: slow on CPU
  cfg.compare.override.distill.path = 'materialised'
  with pytest.raises(ValueError,
                     match='ends before the source search fits '
                     r'its surrogate .* give more than 9'):
    T.transfer(cfg, str(tmp_path / 'early'), ['resnet34'], 1, 3, 9, [3])
  assert not os.path.exists(tmp_path / 'early')
  cfg.search.esnac.init_random = 0  # a 3-candidate source fits at once
  logs = []
  doc = T.transfer(cfg,
                   str(tmp_path / 'tr'), ['resnet34'],
                   seeds=1,
                   evaluations=3,
                   source_evaluations=3,
                   milestones=[3],
                   log=logs.append)
  assert doc['format'] == T.FORMAT
  assert sorted(doc['summary']['methods']) == [
      'resnet34 fine-tuned', 'resnet34 fresh', 'resnet34 transferred'
  ]
  assert os.path.isdir(doc['source']['embedding'])
  assert all(len(r['rewards']) == 3 for r in doc['runs'])
  assert 'evals to' not in S.format_table(doc['summary'], [3])
  with pytest.raises(ValueError, match='config.teacher'):
    T.transfer(cfg, str(tmp_path / 'tr'), ['resnet99'], 1, 3, 3, [3])


def catnet(input_size, in_channels, num_classes):
  """A user's builder without a width: two branches concatenated, then a
  removable conv (so the masked path cannot run it)."""
  from esnac_jax.arch import INPUT, ArchBuilder
  b = ArchBuilder((input_size, input_size, in_channels), 'catnet')

  def cbr(x, c, k, name):
    return b.relu(b.bn(b.conv(x, c, k, 1, k // 2, name=name),
                       name=name + '.bn'))

  x = cbr(INPUT, 8, 3, 'stem')
  x = b.concat([cbr(x, 4, 1, 'l'), cbr(x, 4, 3, 'r')], name='cat')
  x = cbr(x, 8, 3, 'after')
  b.linear(b.flatten(b.avgpool(x, input_size, 1)), num_classes, name='fc')
  return b.build()


@pytest.mark.slow
def test_a_widthless_builder_that_cannot_be_masked(tmp_path):
  """bench.compare's width and masked-path overrides are for the zoo: a
  builder without a width is built as it is, and a teacher the masked path
  cannot run is scored on the materialised path."""
  cfg, logs = _tiny_config(), []
  doc = C.compare_teachers(cfg,
                           str(tmp_path / 'w'), ['test_bench_compare:catnet'],
                           ['random'],
                           seeds=1,
                           evaluations=2,
                           milestones=[2],
                           log=logs.append)
  info = doc['teacher_info']['test_bench_compare:catnet']
  assert info['params'] == catnet(8, 1, 10).num_params
  assert any('masked path cannot run catnet' in s and
             'scores catnet on the materialised path' in s for s in logs)
  assert any('on the materialised path' in s and 'width 1.0' in s for s in logs)
