"""The README's code examples run as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _examples():
  with open(os.path.join(ROOT, 'README.md')) as f:
    return re.findall(r'```python\n(.*?)```', f.read(), re.S)


def test_own_teacher_example():
  ns = {}
  exec(_examples()[0], ns)
  assert ns['teacher'].num_params > 0 and ns['teacher'].num_layers == 9


def test_surrogate_example():
  ns = {}
  exec(_examples()[1], ns)
  assert ns['scores'].shape == (4, 500)
  assert len({m for _, m in ns['batch']}) == 4
  assert ns['emb'].shape == (3, 64)


def test_search_example():
  ns = {}
  exec(_examples()[2], ns)
  s = ns['searcher']
  assert len(s.records) == 12 and len({r.arch for r in s.records}) == 12
  assert ns['best'].reward == max(r.reward for r in s.records) > 0
