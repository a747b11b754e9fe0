"""Every shipped config builds its teacher and samples children."""

import glob
import importlib.util
import os

import pytest

from esnac_jax import summary
from esnac_jax.from_config import sampler_config, teacher_arch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not os.path.basename(p).startswith(('_', 'common')))


def _load(path):
  spec = importlib.util.spec_from_file_location('cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_builds(path, capsys):
  config = _load(path)
  out = summary.describe(config, num_samples=2)
  assert out['teacher_params'] == teacher_arch(config).num_params
  assert len(out['samples']) == 2
  assert 'params' in capsys.readouterr().out


def test_digits_default_is_small():
  config = _load(os.path.join(ROOT, 'configs', 'digits.py'))
  t = teacher_arch(config)
  assert t.input_shape == (8, 8, 1) and t.output_shape == (10,)
  assert t.num_params < 1_000_000


def test_bad_config_values():
  config = _load(os.path.join(ROOT, 'configs', 'digits.py'))
  config.dataset = 'mnist'
  with pytest.raises(ValueError, match="unknown dataset 'mnist'; known "
                     'datasets: cifar10, cifar100, digits'):
    teacher_arch(config)
  config.dataset = 'digits'
  config.search_space.group_mode = 'coarse'
  with pytest.raises(ValueError, match="unknown group_mode 'coarse'"):
    sampler_config(config)
