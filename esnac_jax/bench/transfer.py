"""Benchmark: a learned embedding reused for another teacher.

  python -m esnac_jax.bench.transfer --config=configs/digits.py
  python -m esnac_jax.bench.transfer --config=configs/digits.py \\
      --targets=resnet34,mobilenetv2 --seeds=3 --evaluations=40

1. Source: an ESNAC search of the config's teacher (--source_evaluations
   candidates) fits the embedding; it is saved to WORKDIR/source/embedding,
   as `python -m esnac_jax.main` saves WORKDIR/embedding.
2. Each target teacher (same dataset): ESNAC searches with a fresh
   embedding, with the saved one frozen
   (`search.surrogate.init_from=..., train_embedding=False`: only the GP
   hyperparameters are fitted) and with the saved one as a warm start that
   keeps training (`train_embedding=True`), --seeds seeds each, at the same
   number of evaluations. Scoring is bench.compare's (config.compare.override, cached
   per candidate).

Writes WORKDIR/transfer.json and transfer.png; prints the table.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import ml_collections

from esnac_jax.bench import compare as C
from esnac_jax.bench import summaries
from esnac_jax.bench import scoring as S
from esnac_jax.job.report import write_json

FORMAT = 'esnac_jax.transfer/1'


def source_embedding(cfg: ml_collections.ConfigDict,
                     workdir: str,
                     evaluations: int,
                     log: Callable[[str], None] = print) -> str:
  """Path of the source search's saved embedding (searched if absent)."""
  from esnac_jax.job import from_config
  from esnac_jax.surrogate.transfer import save_embedding
  path = os.path.join(workdir, 'embedding')
  if os.path.isdir(path):
    log(f'source embedding: reusing {path}')
    return path
  teacher = from_config.teacher_arch(cfg)
  score, _ = S.make_scorer(cfg, teacher, workdir, log)
  per_step = cfg.search.candidates_per_step
  searcher = C.make_method('esnac', cfg, teacher, cfg.seed,
                           -(-evaluations // per_step))
  run = C.run_method(searcher, score, 'source', cfg.seed, evaluations, per_step,
                     log)
  save_embedding(path, searcher.fitted_embedding(),
                 from_config.embedding_meta(cfg, teacher, len(run.rewards)))
  log(f'source search of {teacher.name}: best {max(run.rewards):.4f} after '
      f'{len(run.rewards)} candidates; embedding saved to {path}')
  return path


def transfer(config: ml_collections.ConfigDict,
             workdir: str,
             targets: Sequence[str],
             seeds: int,
             evaluations: int,
             source_evaluations: int,
             milestones: Sequence[int],
             log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the benchmark; returns the transfer.json document."""
  from esnac_jax.job import from_config
  bad = [n for n in milestones if not 1 <= n <= evaluations]
  if bad or seeds < 1 or source_evaluations < 1:
    raise ValueError(f'need seeds >= 1, source_evaluations >= 1 and '
                     f'milestones within 1..{evaluations}; got {seeds}, '
                     f'{source_evaluations}, {list(milestones)}')
  if config.search.searcher != 'esnac':
    raise ValueError('transfer needs config.search.searcher=esnac')
  cfg = C.merged_config(config)
  per_step = max(cfg.search.candidates_per_step, 1)
  first_fit = -(-cfg.search.esnac.init_random // per_step) * per_step
  if source_evaluations <= first_fit:
    raise ValueError(
        f'--source_evaluations={source_evaluations} ends before the source '
        f'search fits its surrogate (its first '
        f'{cfg.search.esnac.init_random} candidates are prior draws, '
        f'config.search.esnac.init_random); give more than {first_fit}')
  steps = -(-evaluations // per_step)
  variants = {}
  for target in targets:  # every bad name fails before any training
    tcfg = ml_collections.ConfigDict(cfg.to_dict())
    tcfg.teacher.name = target
    variants[target] = (tcfg, from_config.teacher_arch(tcfg))
  path = source_embedding(cfg, os.path.join(workdir, 'source'),
                          source_evaluations, log)
  runs: list[summaries.Run] = []
  for target, (tcfg, teacher) in variants.items():
    score, _ = S.make_scorer(tcfg, teacher, os.path.join(workdir, target), log)
    frozen = ml_collections.ConfigDict(tcfg.to_dict())
    frozen.search.surrogate.init_from = path
    frozen.search.surrogate.train_embedding = False
    tuned = ml_collections.ConfigDict(frozen.to_dict())
    tuned.search.surrogate.train_embedding = True
    for i in range(seeds):
      for name, c in ((f'{target} fresh', tcfg), (f'{target} transferred',
                                                  frozen),
                      (f'{target} fine-tuned', tuned)):
        searcher = C.make_method('esnac', c, teacher, cfg.seed + i, steps)
        run = C.run_method(searcher, score, name, cfg.seed + i, evaluations,
                           per_step, log)
        runs.append(run)
        log(f'{name} seed {cfg.seed + i}: best {max(run.rewards):.4f}; '
            f'propose {run.propose_s:.0f}s, train {run.train_s:.0f}s')
  summary = summaries.summarise(runs, milestones, reference='')
  doc = {
      'format': FORMAT,
      'source': {
          'teacher': cfg.teacher.name,
          'evaluations': source_evaluations,
          'embedding': path
      },
      'runs': [r.to_dict() for r in runs],
      'summary': summary
  }
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, 'transfer.json'), doc)
  summaries.plot_compare(os.path.join(workdir, 'transfer.png'), runs)
  return doc


def define_flags() -> None:
  from absl import flags
  from esnac_jax.bench.common import define_search_flags
  define_search_flags(
      '/tmp/esnac_transfer', 'Teachers, score caches, the '
      'source embedding and the results.', ['10', '20', '40'])
  flags.DEFINE_list('targets', ['resnet34'], 'Target teachers.')
  flags.DEFINE_integer('seeds', 3, 'Seeds per target and variant.')
  flags.DEFINE_integer('evaluations', 40, 'Candidates per target search.')
  flags.DEFINE_integer(
      'source_evaluations', 80, 'Candidates of the source '
      'search that fits the embedding.')


def main(argv) -> None:
  from esnac_jax.bench.common import run_search_cli

  def run(f, milestones, log):
    doc = transfer(f.config,
                   f.workdir,
                   f.targets,
                   f.seeds,
                   f.evaluations,
                   f.source_evaluations,
                   milestones,
                   log=log)
    print('\n' + summaries.format_table(doc['summary'], milestones))

  run_search_cli(argv, run)


if __name__ == '__main__':
  from absl import app
  define_flags()
  app.run(main)
