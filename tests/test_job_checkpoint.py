"""Search state on disk: round trip, damaged steps, config mismatches."""

import copy
import json
import os

import numpy as np
import pytest

from esnac_jax.job.checkpoint import SearchCheckpointer
from esnac_jax.job.loop import (ConfigMismatchError, check_config, kept_indices,
                                step_seed)
from esnac_jax.search.record import Record
from esnac_jax.train import CheckpointError
from conftest import tiny_teacher


def _meta(step):
  return {'config': {'a': 1}, 'searcher': {'asks': step}, 'timing': {}}


def test_round_trip_and_latest(tmp_path):
  ck = SearchCheckpointer(str(tmp_path / 'search'))
  assert ck.restore() is None
  w = {'weights': {'3': {'params': {'k': np.arange(6.0).reshape(2, 3)}}}}
  ck.save(1, _meta(1))
  ck.save(2, _meta(2), w)
  ck.close()
  meta, arrays = SearchCheckpointer(str(tmp_path / 'search')).restore()
  assert meta['step'] == 2 and meta['searcher'] == {'asks': 2}
  np.testing.assert_array_equal(arrays['weights']['3']['params']['k'],
                                np.arange(6.0).reshape(2, 3))


def _damage(step_dir):
  for root, _, files in os.walk(step_dir):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'\x00garbage')


def test_damaged_latest_step_falls_back_and_is_redone(tmp_path):
  d = str(tmp_path / 'search')
  ck = SearchCheckpointer(d)
  for s in (1, 2):
    ck.save(s, _meta(s))
  ck.close()
  _damage(os.path.join(d, '2'))
  logs = []
  ck = SearchCheckpointer(d)
  meta, _ = ck.restore(logs.append)
  assert meta['step'] == 1
  assert any('step 2 was unreadable' in m for m in logs)
  assert os.path.isdir(f'{d}.damaged-step2')  # kept, not deleted
  ck.save(2, _meta(2))  # the step can be redone
  assert ck.latest_step() == 2
  ck.close()


def test_all_steps_damaged_is_a_clear_error(tmp_path):
  d = str(tmp_path / 'search')
  ck = SearchCheckpointer(d)
  ck.save(1, _meta(1))
  ck.close()
  _damage(os.path.join(d, '1'))
  with pytest.raises(CheckpointError,
                     match='no readable search checkpoint'
                     '.*delete that directory'):
    SearchCheckpointer(d).restore()


def test_config_mismatch_names_the_keys():
  saved = {
      'search': {
          'steps': 6,
          'esnac': {
              'pool_size': 1000
          }
      },
      'final': {
          'epochs': 20
      }
  }
  ok = {
      'search': {
          'steps': 9,
          'esnac': {
              'pool_size': 1000
          }
      },
      'final': {
          'epochs': 50
      }
  }
  check_config(saved, ok, '/w/search', ('search.steps', 'final'))
  bad = {
      'search': {
          'steps': 6,
          'esnac': {
              'pool_size': 10
          }
      },
      'final': {
          'epochs': 20
      }
  }
  with pytest.raises(ConfigMismatchError,
                     match=r"search.esnac.pool_size: "
                     r"1000 -> 10.*delete /w/search to start the search "
                     'afresh'):
    check_config(saved, bad, '/w/search', ('search.steps', 'final'))


def test_keys_added_since_a_search_was_saved():
  """A saved config without a key added later matches the value that does
  what the saved search did, and only that value."""
  saved = {'search': {'steps': 6, 'surrogate': {'hidden': 32}}}
  ok = {
      'search': {
          'steps': 6,
          'surrogate': {
              'hidden': 32,
              'lstm_impl': 'custom'
          }
      }
  }
  check_config(saved, ok, '/w/search', ())
  other = {
      'search': {
          'steps': 6,
          'surrogate': {
              'hidden': 32,
              'lstm_impl': 'flax'
          }
      }
  }
  with pytest.raises(ConfigMismatchError,
                     match="lstm_impl: 'custom' -> 'flax'"):
    check_config(saved, other, '/w/search', ())
  # a key whose every value does what the saved search did
  for mode in ('raw', 'extrapolate'):
    check_config(saved,
                 dict(ok, search=dict(ok['search'], esnac={'fidelity': mode})),
                 '/w/search', ())


def test_a_search_saved_before_halving_resumes_with_todays_defaults():
  from esnac_jax.configs.common import get_base_config
  now = json.loads(get_base_config().to_json())
  saved = copy.deepcopy(now)
  del saved['distill']['halving'], saved['search']['esnac']['fidelity']
  check_config(saved, now, '/w/search', ())
  now['distill']['halving'] = [1]
  with pytest.raises(ConfigMismatchError, match=r'halving: \[\] -> \[1\]'):
    check_config(saved, now, '/w/search', ())


def test_kept_indices_and_step_seed():
  t = tiny_teacher('resnet18')
  recs = [Record(t, 1, 1, 0.5, r, 1) for r in (0.2, 0.7, 0.7, 0.1)]
  assert kept_indices(recs, 2) == [1, 2]
  assert kept_indices(recs, 0) == []
  assert step_seed(1, 2) == step_seed(1, 2) != step_seed(1, 3)
