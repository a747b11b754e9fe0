"""Every shipped config builds its teacher and samples children."""

import glob
import importlib.util
import os

import pytest

from esnac_jax import summary
from esnac_jax.job import from_config
from esnac_jax.arch import SamplerConfig
from esnac_jax.bench.compare import faithful_config
from esnac_jax.job.from_config import sampler_config, teacher_arch
from esnac_jax.search import ESNACConfig, N2NConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not os.path.basename(p).startswith(('_', 'common')))


def _load(path, arg=None):
  spec = importlib.util.spec_from_file_location('cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


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
  with pytest.raises(ValueError,
                     match="unknown dataset 'mnist'; known "
                     'datasets: cifar10, cifar100, digits'):
    teacher_arch(config)
  config.dataset = 'digits'
  config.search_space.group_mode = 'coarse'
  with pytest.raises(ValueError, match="unknown group_mode 'coarse'"):
    sampler_config(config)


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_presets_are_the_library_objects(path):
  """`X.py` and `X.py:faithful` give exactly the library's ESNACConfig()
  and ESNACConfig.faithful(): the presets are defined once."""
  default, faithful = _load(path), _load(path, 'faithful')
  assert from_config.esnac_config(default) == ESNACConfig()
  assert from_config.esnac_config(faithful) == ESNACConfig.faithful()
  assert from_config.esnac_config(faithful).surrogate.hidden == 64
  assert sampler_config(default) == SamplerConfig()
  n2n = from_config.build(N2NConfig,
                          default.search.n2n,
                          'search.n2n',
                          stage1_asks=N2NConfig().stage1_asks)
  assert n2n == N2NConfig()
  # bench.compare's faithful method at full size is the same object too.
  default.compare.faithful.update(hidden=64,
                                  num_layers=4,
                                  pool_size=1000,
                                  max_steps=100)
  assert faithful_config(default) == ESNACConfig.faithful()


def test_config_errors_name_the_section():
  config = _load(os.path.join(ROOT, 'configs', 'digits.py'))
  config.search.surrogate.hidden = 0
  with pytest.raises(ValueError,
                     match='config.search.surrogate: hidden '
                     'must be >= 1, got 0'):
    from_config.esnac_config(config)
  config.search.surrogate.hidden = 32
  config.search.esnac.mutate_frac = 2.0
  with pytest.raises(ValueError,
                     match=r'config.search.esnac: mutate_frac '
                     r'must be in \[0, 1\], got 2.0'):
    from_config.esnac_config(config)


def _builder_module(tmp_path, monkeypatch, body):
  (tmp_path / 'my_nets.py').write_text(body)
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.delitem(__import__('sys').modules, 'my_nets', raising=False)


def test_teacher_from_a_python_builder(tmp_path, monkeypatch):
  _builder_module(
      tmp_path, monkeypatch, '''
from esnac_jax.bench.teachers import vgg_chain
def tiny(input_size, in_channels, num_classes):
  return vgg_chain(input_size, in_channels, num_classes, width=0.25)
def not_an_arch(input_size, in_channels, num_classes):
  return 'a string'
def wrong_classes(input_size, in_channels, num_classes):
  return vgg_chain(input_size, in_channels, 7, width=0.25)
def no_args():
  return None
def broken(input_size, in_channels, num_classes):
  raise RuntimeError('a bug in my builder')
def type_error_inside(input_size, in_channels, num_classes):
  return len(3)
''')
  config = _load(os.path.join(ROOT, 'configs', 'digits.py'))
  config.teacher.name = 'my_nets:tiny'
  config.teacher.width = 1.0
  t = teacher_arch(config)
  assert t.name == 'vgg_chain' and t.input_shape == (8, 8, 1)
  assert t.output_shape == (10,)
  config.teacher.width = 0.5
  with pytest.raises(ValueError, match="'my_nets:tiny' takes no width"):
    teacher_arch(config)
  config.teacher.width = 1.0
  for name, message in [
      ('my_nets:missing', "cannot be loaded .*AttributeError"),
      ('no_such_module:f', "cannot be loaded .*ModuleNotFoundError"),
      ('my_nets:not_an_arch', 'returned str, not an Arch'),
      ('my_nets:wrong_classes', r'describes a network from \(8, 8, 1\) to '
       r"\(7,\); dataset 'digits' needs \(8, 8, 1\) to \(10,\)"),
      ('my_nets:no_args', 'must accept input_size, in_channels and '
       'num_classes'),
      ('my_nets:broken', "'my_nets:broken' raised RuntimeError: a bug in my "
       'builder'),
      ('my_nets:type_error_inside', "raised TypeError: object of type 'int' "
       'has no len')
  ]:
    config.teacher.name = name
    with pytest.raises(ValueError, match=f'config.teacher: .*{message}'):
      teacher_arch(config)


def test_builder_teacher_with_width():
  config = _load(os.path.join(ROOT, 'configs', 'digits.py'))
  config.teacher.name = 'esnac_jax.bench.teachers:vgg_chain'
  config.teacher.width = 0.25
  narrow = teacher_arch(config)
  config.teacher.width = 0.5
  assert teacher_arch(config).num_params > narrow.num_params
