"""surrogate.transfer: a fitted embedding saved, checked, and reused (frozen
or fine-tuned) by a search of another teacher."""

import os

import jax
import numpy as np
import pytest

from conftest import tiny_teacher
from esnac_jax.arch import SamplerConfig, feature_dim
from esnac_jax.search import ESNACConfig, ESNACSearcher, Result
from esnac_jax.surrogate import SurrogateConfig
from esnac_jax.surrogate.transfer import (EmbeddingError, load_embedding,
                                          save_embedding)

SMALL = SurrogateConfig(hidden=8, num_layers=1, max_steps=8)


def _searcher(teacher, surrogate=SMALL, embedding=None, seed=0):
  # init_random=0: the surrogate (and so the embedding) is fitted from the
  # second ask on, which these short searches need.
  cfg = ESNACConfig(surrogate=surrogate,
                    pool_size=30,
                    parents=2,
                    init_random=0,
                    random_frac=0.0)
  return ESNACSearcher(teacher,
                       SamplerConfig(),
                       seed,
                       config=cfg,
                       embedding=embedding)


def _rounds(s, n=2, k=3):
  rng = np.random.default_rng(0)
  for step in range(n):
    archs = s.ask(k)
    s.tell(archs, [Result(0.9, float(v)) for v in rng.random(k)], step)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _meta(**kw):
  return dict(
      {
          'hidden': 8,
          'num_layers': 1,
          'features': 'normalized',
          'feature_dim': feature_dim('normalized')
      }, **kw)


@pytest.mark.slow
def test_saved_embedding_frozen_or_finetuned_on_another_teacher(tmp_path):
  src = _searcher(tiny_teacher('resnet18'))
  assert src.fitted_embedding() is None
  _rounds(src)
  lstm = src.fitted_embedding()
  path = str(tmp_path / 'embedding')
  save_embedding(path, lstm, _meta(teacher='resnet18'))
  loaded, meta = load_embedding(path, SMALL, 'normalized')
  assert meta['teacher'] == 'resnet18'
  for a, b in zip(_leaves(loaded), _leaves(lstm)):
    np.testing.assert_array_equal(a, b)

  # Another teacher (another length of feature sequences): frozen stays put,
  # fine-tuned moves, both propose valid new candidates.
  frozen_cfg = SurrogateConfig(hidden=8,
                               num_layers=1,
                               max_steps=8,
                               train_embedding=False)
  frozen = _searcher(tiny_teacher('resnet34'), frozen_cfg, loaded)
  tuned = _searcher(tiny_teacher('resnet34'), SMALL, loaded)
  _rounds(frozen)
  _rounds(tuned)
  for a, b in zip(_leaves(frozen.fitted_embedding()), _leaves(loaded)):
    np.testing.assert_array_equal(a, b)
  assert any(
      not np.array_equal(a, b)
      for a, b in zip(_leaves(tuned.fitted_embedding()), _leaves(loaded)))
  assert len({r.arch for r in frozen.records}) == 6


def test_mismatch_and_missing(tmp_path):
  with pytest.raises(EmbeddingError, match='nothing to save'):
    save_embedding(str(tmp_path / 'none'), None, _meta())
  assert not os.path.exists(tmp_path / 'none')
  with pytest.raises(EmbeddingError, match='no saved embedding'):
    load_embedding(str(tmp_path / 'nope'), SMALL, 'normalized')
  src = _searcher(tiny_teacher('resnet18'))
  _rounds(src, n=1)
  path = str(tmp_path / 'e')
  save_embedding(path, src.fitted_embedding(), _meta())
  with pytest.raises(EmbeddingError, match='hidden: saved 8, config 16'):
    load_embedding(path, SurrogateConfig(hidden=16, num_layers=1), 'normalized')
  with pytest.raises(EmbeddingError, match="features: saved 'normalized'"):
    load_embedding(path, SMALL, 'original')
  # A meta without lstm_impl (saved before it existed) is the custom one.
  with pytest.raises(EmbeddingError,
                     match="lstm_impl: saved 'custom', "
                     "config 'flax'"):
    load_embedding(path,
                   SurrogateConfig(hidden=8, num_layers=1, lstm_impl='flax'),
                   'normalized')
  for root, _, files in os.walk(path):  # damage every stored array
    for f in files:
      if not f.endswith('.json') and 'lstm' in root:
        with open(os.path.join(root, f), 'wb') as fh:
          fh.write(b'garbage')
  with pytest.raises(EmbeddingError, match='unreadable'):
    load_embedding(path, SMALL, 'normalized')
