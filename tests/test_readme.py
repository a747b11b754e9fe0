"""The code examples of the README and of docs/ run as written.

Examples are found by the label on the line before them
(`<!-- example: NAME -->`), so moving or adding text does not change which
test runs which example.
"""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [
    os.path.join(ROOT, 'README.md'),
    *sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
]
_LABELLED = re.compile(r'<!-- example: (\w+) -->\n```python\n(.*?)```', re.S)


def _examples() -> dict[str, str]:
  found = {}
  for path in DOCS:
    with open(path) as f:
      for name, code in _LABELLED.findall(f.read()):
        assert name not in found, f'example {name!r} is labelled twice'
        found[name] = code
  return found


def _run(name: str) -> dict:
  ns = {}
  exec(_examples()[name], ns)  # pylint: disable=exec-used
  return ns


def test_every_python_example_is_labelled():
  for path in DOCS:
    with open(path) as f:
      text = f.read()
    assert text.count('```python') == len(_LABELLED.findall(text)), path


def test_own_teacher_example():
  ns = _run('own_teacher')
  assert ns['teacher'].num_params > 0 and ns['teacher'].num_layers == 9


@pytest.mark.slow
def test_surrogate_example():
  ns = _run('surrogate')
  assert ns['scores'].shape == (4, 500)
  assert len({m for _, m in ns['batch']}) == 4
  assert ns['emb'].shape == (3, 64)


def test_search_example():
  ns = _run('search')
  s = ns['searcher']
  assert len(s.records) == 12 and len({r.arch for r in s.records}) == 12
  assert ns['best'].reward == max(r.reward for r in s.records) > 0


@pytest.mark.slow
def test_take_student_example(tmp_path):
  """Runs a tiny job into a workdir, then the example on it."""
  workdir = str(tmp_path / 'w')
  cmd = [
      sys.executable, '-m', 'esnac_jax.main', '--config=configs/digits.py',
      f'--workdir={workdir}', '--config.teacher.width=0.125',
      '--config.teacher.train.epochs=1', '--config.search.steps=1',
      '--config.search.candidates_per_step=2',
      '--config.search.esnac.pool_size=8', '--config.distill.epochs=1',
      '--config.final.epochs=1', '--config.final.top_n=1'
  ]
  p = subprocess.run(cmd,
                     cwd=ROOT,
                     capture_output=True,
                     text=True,
                     timeout=900,
                     env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert p.returncode == 0, p.stderr[-2000:]
  code = _examples()['take_student']
  assert "'/tmp/esnac_digits'" in code
  ns = {}
  exec(code.replace('/tmp/esnac_digits', workdir), ns)  # pylint: disable=exec-used
  assert ns['logits'].shape == (360, 10)
  with open(os.path.join(workdir, 'results.json')) as f:
    chosen = json.load(f)['final']['chosen']
  acc = float(
      np.mean(np.argmax(ns['logits'], -1) == ns['load_digits']().test.labels))
  assert acc == pytest.approx(chosen['test_acc'], abs=1e-6)


def test_every_example_has_a_test():
  assert set(
      _examples()) == {'own_teacher', 'surrogate', 'search', 'take_student'}


def _flat_keys(d, prefix=''):
  keys = set()
  for k, v in d.items():
    keys.add(prefix + k)
    if isinstance(v, dict):
      keys |= _flat_keys(v, f'{prefix}{k}.')
  return keys


def test_every_config_flag_and_module_in_the_docs_exists():
  """The commands the docs show name real config keys and modules, so a
  renamed key cannot leave a copy-paste command behind."""
  import importlib.util
  from esnac_jax.configs.common import get_base_config
  keys = _flat_keys(json.loads(get_base_config().to_json()))
  texts = DOCS + glob.glob(os.path.join(ROOT, 'launch', '*.md'))
  flags, modules = set(), set()
  for path in texts:
    with open(path) as f:
      text = f.read()
    flags |= set(re.findall(r'--config\.([A-Za-z_][\w.]*[A-Za-z_\d])', text))
    modules |= set(re.findall(r'python -m (esnac_jax(?:\.\w+)*)', text))
  flags.discard('KEY')
  assert {'dataset', 'image_size', 'teacher.onnx', 'final.indices'} <= flags
  unknown = sorted(f for f in flags
                   if f not in keys and not f.startswith('compare.override.'))
  assert not unknown, f'the docs use config keys that do not exist: {unknown}'
  missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
  assert not missing, f'the docs run modules that do not exist: {missing}'
