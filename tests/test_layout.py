"""The package's dependencies point one way (docs/design.md)."""

import ast
import glob
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THIRD_PARTY = {'jax', 'numpy', 'flax', 'optax'}
# What each library package may import from the project.
ALLOWED = {
    'search': {'esnac_jax.arch', 'esnac_jax.search', 'esnac_jax.surrogate'},
    # checkpoints and paths are leaves: they import nothing of the project.
    'surrogate': {
        'esnac_jax.surrogate', 'esnac_jax.checkpoints', 'esnac_jax.paths'
    },
}


def _imports(path):
  tree = ast.parse(open(path).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      yield from (f'{node.module}.{a.name}' for a in node.names)


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_library_packages_import_only_what_they_may(package):
  bad = []
  for path in glob.glob(os.path.join(ROOT, 'esnac_jax', package, '*.py')):
    for name in _imports(path):
      top = name.split('.')[0]
      if top == 'esnac_jax':
        ok = any(
            name == a or name.startswith(a + '.') for a in ALLOWED[package])
      else:
        ok = top in THIRD_PARTY or top in sys.stdlib_module_names
      if not ok:
        bad.append(f'{os.path.basename(path)}: {name}')
  assert not bad, bad
