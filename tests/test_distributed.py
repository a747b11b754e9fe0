"""esnac_jax.distributed on one process (tests/test_masked.py runs two)."""

import jax.numpy as jnp
import numpy as np
import pytest

from esnac_jax import distributed
from esnac_jax.arch import get_teacher, sample


def test_initialize_refuses_partial_settings():
  with pytest.raises(ValueError, match='together'):
    distributed.initialize('localhost:1234', 0, -1)
  with pytest.raises(ValueError, match='process_id=5 outside 0..1'):
    distributed.initialize('localhost:1234', 2, 5)


def test_one_process_keeps_its_own_values():
  t = get_teacher('resnet18', 10, 1, 0.125, 8)
  kids = [sample(t, np.random.default_rng(i)) for i in range(3)]
  assert distributed.agree(kids) == kids
  assert distributed.broadcast_text('héllo') == 'héllo'
  tree = {'a': jnp.arange(3.0), 'b': np.ones(2)}
  assert distributed.broadcast_tree(tree) is tree
  assert distributed.is_primary()
