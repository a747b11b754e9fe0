"""Scoring candidates for the benchmarks, cached in a workdir.

Every method of a comparison shares one scoring function: the config
(with config.compare.override merged in) distils each candidate with a
seed derived from the candidate itself, so the same child scores the same
whichever method proposes it. Results are appended to a JSON-lines file
as they come and read back on a rerun; a killed benchmark loses at most
the candidate being trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Sequence

import numpy as np
import ml_collections

from esnac_jax.arch import Arch
from esnac_jax.search import Result
from esnac_jax.search.record import Record


def arch_key(arch: Arch) -> str:
  """A stable name for an Arch across processes (sha256 of its JSON)."""
  return hashlib.sha256(arch.to_json(sort_keys=True).encode()).hexdigest()


def arch_seed(arch: Arch, seed: int) -> int:
  """The distillation seed of a candidate: a function of the candidate."""
  return int(
      np.random.SeedSequence([seed, int(arch_key(arch)[:16],
                                        16)]).generate_state(1)[0])


class ScoreCache:
  """Results by candidate, appended to a JSON-lines file as they come, so a
  killed comparison loses at most the candidate being trained."""

  def __init__(self, path: str, log: Callable[[str], None] = print):
    self.path = path
    self.results: dict[str, Result] = {}
    bad = 0
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          try:
            d = json.loads(line)
            self.results[d['key']] = Result(d['val_acc'], d['reward'],
                                            d['best_epoch'], d['seconds'],
                                            d.get('epochs', 0),
                                            tuple(d.get('curve', ())))
          except (ValueError, KeyError, TypeError):
            bad += 1  # e.g. the last line of a killed run
    if bad:
      log(f'{path}: skipped {bad} unreadable line(s); those candidates '
          'will be trained again')

  def get(self, arch: Arch, batch: str = '') -> Result | None:
    return self.results.get(_key(arch, batch))

  def put(self, arch: Arch, r: Result, batch: str = '') -> None:
    key = _key(arch, batch)
    self.results[key] = r
    with open(self.path, 'a') as f:
      f.write(
          json.dumps({
              'key': key,
              'val_acc': r.val_acc,
              'reward': r.reward,
              'best_epoch': r.best_epoch,
              'seconds': r.seconds,
              'epochs': r.epochs,
              'curve': list(r.curve)
          }) + '\n')


Score = Callable[[Arch], Result]


def cached(score: Score,
           cache: ScoreCache) -> Callable[[Arch], tuple[Result, bool]]:
  """(result, trained_now) for a candidate, training only cache misses."""

  def get(arch: Arch) -> tuple[Result, bool]:
    r = cache.get(arch)
    if r is not None:
      return r, False
    r = score(arch)
    cache.put(arch, r)
    return r, True

  return get


def _key(arch: Arch, batch: str) -> str:
  return arch_key(arch) + (f'@{batch}' if batch else '')


def batch_key(archs: Sequence[Arch]) -> str:
  """A stable name for a batch of candidates trained together."""
  joined = ','.join(arch_key(a) for a in archs)
  return hashlib.sha256(joined.encode()).hexdigest()


def cached_batches(
    score: Callable[..., list[Result]],
    cache: ScoreCache,
    context: Callable[[Sequence[Record]], str] = lambda history: ''
) -> Callable[..., list[tuple[Result, bool]]]:
  """(result, trained_now) per candidate of a batch trained together
  (successive halving ranks a candidate against its batch), cached per
  (candidate, batch, context(history)): `context` names what else of the
  search's history the scores depend on (distill.stop_hopeless)."""

  def get(
      archs: list[Arch], history: Sequence[Record] = ()
  ) -> list[tuple[Result, bool]]:
    b = batch_key(archs)
    extra = context(history)
    if extra:
      b = hashlib.sha256(f'{b}|{extra}'.encode()).hexdigest()
    hits = [cache.get(a, b) for a in archs]
    if all(h is not None for h in hits):
      return [(h, False) for h in hits]
    results = score(archs, history)
    for a, r in zip(archs, results):
      cache.put(a, r, b)
    return [(r, True) for r in results]

  return get


def make_scorer(
    cfg: ml_collections.ConfigDict,
    teacher: Arch,
    workdir: str,
    log: Callable[[str], None] = print
) -> tuple[Callable[[list[Arch]], list[tuple[Result, bool]]], dict]:
  """The cached scoring function of a (merged) config, and the teacher's
  metrics: trains or restores the teacher in `workdir`; caches in
  workdir/scores.jsonl. Each candidate is distilled alone with its own
  seed; with successive halving (config.distill.halving) or
  config.compare.batch_scoring, a step's candidates train together, as
  in the job, each charged an equal share of the batch's seconds.
  """
  import jax
  from esnac_jax.job import from_config
  from esnac_jax.job.evaluate import Evaluator, resolve_path
  from esnac_jax.train import get_teacher_variables

  distill = from_config.train_config(cfg.distill, 'distill',
                                     cfg.get('data_feed', 'auto'))
  try:
    path = resolve_path(cfg.distill.path, teacher, cfg.distill.select,
                        jax.default_backend(), distill.dtype,
                        distill.batch_size)
  except ValueError as e:  # the benchmark's masked default, where it cannot
    if cfg.distill.path not in ('masked', 'masked_vmap'):
      raise
    log(f'{e}; this comparison scores {teacher.name} on the materialised '
        'path')
    path = 'materialised'
  os.makedirs(workdir, exist_ok=True)
  ds = from_config.config_dataset(cfg)
  teacher_vars, tm = get_teacher_variables(
      teacher, ds,
      from_config.train_config(cfg.teacher.train, 'teacher.train',
                               cfg.get('data_feed', 'auto')), workdir, cfg.seed,
      log)
  log(f'teacher {teacher.name} width {cfg.teacher.width}: '
      f'{teacher.num_params:,} params, val acc {tm["val_acc"]:.4f}; '
      f'candidates: {cfg.distill.epochs} distillation epoch(s) on the {path} '
      'path')
  stop_hopeless = cfg.distill.get('stop_hopeless', False)
  evaluator = Evaluator(teacher, teacher_vars, tm['val_acc'], ds, distill,
                        from_config.constraints(cfg), cfg.distill.select,
                        cfg.distill.bn_stats, path, stop_hopeless)
  cache = ScoreCache(os.path.join(workdir, 'scores.jsonl'), log)
  if distill.halving or stop_hopeless or cfg.compare.get(
      'batch_scoring', False):

    def batch(archs: list[Arch], history: Sequence[Record]) -> list[Result]:
      seed = int(batch_key(archs)[:8], 16) ^ cfg.seed
      results = evaluator(archs, seed, history=history)[0]
      return [
          dataclasses.replace(r, seconds=r.seconds / len(archs))
          for r in results
      ]

    def context(history: Sequence[Record]) -> str:
      """What the early stopping rule reads from the history."""
      inputs = evaluator.hopeless_inputs(history) if stop_hopeless else None
      if inputs is None:
        return ''
      best, gains = inputs
      return json.dumps([round(best, 9), sorted(gains.items())])

    return cached_batches(batch, cache, context), tm
  one = cached(lambda a: evaluator([a], arch_seed(a, cfg.seed))[0][0], cache)
  return lambda archs, history=(): [one(a) for a in archs], tm
