"""Scores cached in a benchmark workdir: per candidate, per batch trained
together, and per what of the search's history the scores depend on."""

import numpy as np
import pytest

from esnac_jax.bench import scoring as S
from esnac_jax.search import Result


def test_score_cache_round_trip_and_truncated_line(tmp_path):
  from conftest import tiny_teacher
  from esnac_jax.arch import SamplerConfig, sample
  t = tiny_teacher('resnet18')
  rng = np.random.default_rng(0)
  a, b = sample(t, rng, SamplerConfig()), t
  assert S.arch_seed(a, 1) == S.arch_seed(a, 1) != S.arch_seed(b, 1)
  path = str(tmp_path / 'scores.jsonl')
  cache = S.ScoreCache(path)
  calls = []

  def score(x):
    calls.append(x)
    return Result(0.5, 0.25, 1, 0.1)

  get = S.cached(score, cache)
  assert get(a) == (Result(0.5, 0.25, 1, 0.1), True)
  assert get(a)[1] is False and len(calls) == 1
  with open(path, 'a') as f:
    f.write('{"key": "abc", "val_ac')  # a write cut short by a kill
  logs = []
  again = S.ScoreCache(path, logs.append)
  assert again.get(a) == Result(0.5, 0.25, 1, 0.1) and again.get(b) is None
  assert 'skipped 1 unreadable' in logs[0]


def test_batches_are_scored_together_and_cached_per_batch(tmp_path):
  from esnac_jax.arch import SamplerConfig, get_teacher, sample
  t = get_teacher('resnet18', 10, 1, 0.125, 8)
  rng = np.random.default_rng(1)
  a, b, c = (sample(t, rng, SamplerConfig()) for _ in range(3))
  calls = []

  def score(archs, history=()):
    calls.append(list(archs))
    return [
        Result(0.1 * i, 0.2 * i, 1, 0.5, 2 - i, (0.05, 0.1 * i)[:2 - i])
        for i in range(len(archs))
    ]

  path = str(tmp_path / 'scores.jsonl')
  get = S.cached_batches(score, S.ScoreCache(path))
  first = get([a, b])
  assert [now for _, now in first] == [True, True] and len(calls) == 1
  assert get([a, b]) == [(r, False) for r, _ in first] and len(calls) == 1
  # the same candidate in another batch is another score (halving ranks it
  # against its batch)
  assert get([c, a])[1][0].reward == pytest.approx(0.2) and len(calls) == 2
  again = S.ScoreCache(path)
  assert again.get(b, S.batch_key([a, b])).epochs == 1
  assert again.get(b, S.batch_key([a, b])).curve == (0.05,)
  assert again.get(a, S.batch_key([a, b])).curve == (0.05, 0.0)
  assert again.get(a) is None  # not a single-candidate score


def test_batches_scored_by_the_history_are_cached_per_history(tmp_path):
  """With distill.stop_hopeless a batch's scores depend on the search's
  best so far: the cache keys on what the rule reads."""
  from esnac_jax.arch import SamplerConfig, get_teacher, sample
  t = get_teacher('resnet18', 10, 1, 0.125, 8)
  rng = np.random.default_rng(1)
  a, b = (sample(t, rng, SamplerConfig()) for _ in range(2))
  seen = []

  def score(archs, history=()):
    seen.append(len(history))
    return [Result(0.5, 0.4, 1, 1.0, 2, (0.4, 0.5)) for _ in archs]

  get = S.cached_batches(score, S.ScoreCache(str(tmp_path / 's.jsonl')),
                         lambda history: f'best {len(history)}')
  get([a, b], [1, 2])
  get([a, b], [3, 4])
  assert seen == [2]  # the same context: cached
  get([a, b], [1, 2, 3])
  assert seen == [2, 3]
