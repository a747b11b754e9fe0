"""bench.handdesigned: size matching, student selection, bad input, and a
run on a finished (tiny) job."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import job_env, random_variables
from esnac_jax.arch import get_teacher
from esnac_jax.arch.operators import check_child
from esnac_jax.arch.widths import width_groups
from esnac_jax.bench import handdesigned as H
from esnac_jax.configs import digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _teacher(width=0.25):
  return get_teacher('resnet18',
                     num_classes=10,
                     in_channels=1,
                     width=width,
                     input_size=8)


def test_thinned_is_a_uniformly_shrunk_child_of_the_closest_size():
  teacher = _teacher()
  for params in (5_000, 40_000, 300_000):
    arch = H.thinned(teacher, params)
    check_child(arch, teacher)
    kept = [
        g.width / g.teacher_width
        for g in width_groups(arch, teacher)
        if g.teacher_width >= 16
    ]
    # one ratio for every knob (up to rounding to whole channels)
    assert max(kept) - min(kept) < 0.1, kept
    assert abs(math.log(arch.num_params / params)) < 0.15, (arch.num_params,
                                                            params)
  assert H.thinned(teacher, 10**9).num_params == teacher.num_params


@pytest.mark.parametrize('family', ['mobilenetv2', 'shufflenet', 'resnet34'])
def test_width_scaled_matches_the_size_within_the_family_steps(family):
  teacher = _teacher()
  arch = H.width_scaled(family, teacher, 20_000)
  assert arch.name == family
  assert arch.input_shape == teacher.input_shape
  assert arch.output_shape == teacher.output_shape
  assert abs(math.log(arch.num_params / 20_000)) < 0.2, arch.num_params
  # no width of the family gives a size closer than the one chosen
  for w in H._WIDTHS[::7]:
    try:
      other = get_teacher(family, 10, 1, float(w), 8)
    except ValueError:
      continue
    assert (abs(math.log(other.num_params / 20_000))
            >= abs(math.log(arch.num_params / 20_000)) - 1e-12)


def test_width_scaled_refuses_a_family_that_cannot_take_the_input():
  with pytest.raises(ValueError, match='vgg19 cannot be built for 8x8x1'):
    H.width_scaled('vgg19', _teacher(), 20_000)


def test_contenders_share_the_student_size():
  teacher = _teacher()
  student = H.thinned(teacher, 30_000)
  nets = H.contenders(teacher, student, H.BASELINES[:2] + ('mobilenetv2',))
  assert list(nets) == ['searched', 'thinned', 'scratch', 'mobilenetv2']
  assert nets['searched'] == (student, True)
  assert nets['scratch'] == (student, False)
  assert nets['thinned'][1] and not nets['mobilenetv2'][1]
  for arch, _ in nets.values():
    assert abs(math.log(arch.num_params / student.num_params)) < 0.2


def test_students_reads_chosen_front_and_indices():
  results = {
      'candidates': [{}] * 5,
      'final': {
          'chosen': {
              'index': 3
          }
      },
      'pareto': {
          'params': [{
              'index': 1
          }, {
              'index': 3
          }]
      }
  }
  assert H.students(results, ['chosen']) == [3]
  assert H.students(results, ['front', 'chosen', '0']) == [1, 3, 0]
  with pytest.raises(ValueError, match='candidate 5 is not in'):
    H.students(results, ['5'])
  with pytest.raises(ValueError, match="'chosen', 'front' or candidate"):
    H.students(results, ['best'])
  with pytest.raises(ValueError, match='no accuracy-params front'):
    H.students(dict(results, pareto={}), ['front'])
  with pytest.raises(ValueError, match='no chosen student'):
    H.students(dict(results, final={'chosen': None}), ['chosen'])


def _tiny_config():
  cfg = digits.get_config()
  cfg.teacher.width = 0.125
  cfg.distill.update(epochs=1, batch_size=256)
  cfg.final.update(epochs=1, batch_size=256, boundaries=())
  return cfg


def _finished_job(tmp_path, cfg):
  """A workdir as a finished job leaves it: the teacher's checkpoint and a
  results.json whose candidates are children of it."""
  from esnac_jax.job import from_config
  from esnac_jax.train.teacher import save_teacher
  teacher = from_config.teacher_arch(cfg)
  wd = str(tmp_path / 'job')
  os.makedirs(wd)
  save_teacher(os.path.join(wd, 'teacher'), teacher, random_variables(teacher),
               {
                   'val_acc': 0.5,
                   'test_acc': 0.5
               })
  kids = [H.thinned(teacher, teacher.num_params // k) for k in (4, 12)]
  results = {
      'teacher': {
          'arch': teacher.to_dict(),
          'test_acc': 0.5
      },
      'candidates': [{
          'arch': k.to_dict()
      } for k in kids],
      'final': {
          'chosen': {
              'index': 1,
              'params': kids[1].num_params,
              'test_acc': 0.4
          }
      },
      'pareto': {
          'params': [{
              'index': 0
          }, {
              'index': 1
          }]
      }
  }
  with open(os.path.join(wd, 'results.json'), 'w') as f:
    json.dump(results, f)
  return wd, teacher, kids


@pytest.mark.slow
def test_handdesigned_trains_every_network_with_the_same_budget(tmp_path):
  cfg = _tiny_config()
  wd, teacher, kids = _finished_job(tmp_path, cfg)
  logs = []
  doc = H.handdesigned(cfg, wd, ['chosen'], ['thinned', 'mobilenetv2'], 2,
                       logs.append)
  assert doc['format'] == H.FORMAT and doc['seeds'] == 2
  assert doc['budget'] == {'distill_epochs': 1, 'final_epochs': 1}
  assert doc['job_chosen']['index'] == 1
  rows = {r['network']: r for r in doc['rows']}
  assert list(rows) == ['searched', 'thinned', 'mobilenetv2']
  assert rows['searched']['params'] == kids[1].num_params
  for r in rows.values():
    assert r['student'] == 1
    assert [x['seed'] for x in r['runs']] == [cfg.seed, cfg.seed + 1]
    accs = [x['test_acc'] for x in r['runs']]
    assert all(0.0 <= a <= 1.0 for a in accs)
    assert r['test_acc']['mean'] == pytest.approx(np.mean(accs))
    assert r['times'] == pytest.approx(teacher.num_params / r['params'])
  assert len(logs) == 6 and logs[-1].startswith('[6/6] student 1')
  table = H.format_table(doc)
  assert table.count('\n') == 4 and '| 1 | mobilenetv2 |' in table
  H.plot(str(tmp_path / 'h.png'), doc)
  assert os.path.getsize(tmp_path / 'h.png') > 1000


def test_handdesigned_refuses_bad_input_before_training(tmp_path):
  cfg = _tiny_config()
  with pytest.raises(ValueError, match='results.json does not exist'):
    H.handdesigned(cfg, str(tmp_path), ['chosen'], ['thinned'], 1)
  with pytest.raises(ValueError, match="unknown baselines \\['lenet'\\]"):
    H.handdesigned(cfg, str(tmp_path), ['chosen'], ['lenet'], 1)
  with pytest.raises(ValueError, match='--seeds must be >= 1'):
    H.handdesigned(cfg, str(tmp_path), ['chosen'], ['thinned'], 0)
  wd, _, _ = _finished_job(tmp_path, cfg)
  other = _tiny_config()
  other.teacher.width = 0.25
  with pytest.raises(ValueError, match='written for another teacher'):
    H.handdesigned(other, wd, ['chosen'], ['thinned'], 1)


def test_cli_says_what_is_missing_in_one_line(tmp_path):
  p = subprocess.run([
      sys.executable, '-m', 'esnac_jax.bench.handdesigned',
      '--config=configs/digits.py', f'--workdir={tmp_path}'
  ],
                     cwd=ROOT,
                     env=job_env(),
                     capture_output=True,
                     text=True,
                     timeout=300)
  assert p.returncode == 2, p.stderr[-2000:]
  errors = [l for l in p.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'results.json does not exist' in errors[0]
