"""Benchmark: search quality of every searcher at the same budget.

  python -m esnac_jax.bench.compare --config=configs/digits.py
  python -m esnac_jax.bench.compare --config=configs/digits.py --seeds=2 \\
      --evaluations=40 --milestones=10,20,40 --methods=esnac,random

Methods: 'esnac' (the config's ESNAC: the default preset unless the config
argument says :faithful), 'faithful' (the original's choices, sized by
config.compare.faithful), 'random', 'n2n', 'evolution'. All share one
trained teacher and one scoring function: the config with
config.compare.override merged in, each candidate distilled with a seed
derived from the candidate itself, so the same child scores the same
whichever method proposes it (scores are cached in the workdir and reused).

Writes to --workdir: compare.json (every run's rewards in evaluation order,
its proposal and training seconds, and the summary), compare.png (best
reward vs evaluations, mean and one-std band per method) and prints the
table. Rerunning the command resumes: finished runs are read back, an
unfinished one is replayed (searchers are deterministic given their
history, so the replay's candidates come from the score cache).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Sequence

import ml_collections

from esnac_jax.arch import Arch
from esnac_jax.search import ESNACConfig, Result, Searcher, make_searcher
from esnac_jax.bench.scoring import make_scorer
from esnac_jax.bench.summaries import (Run, best_reward, format_scoreboard,
                                       format_table, hypervolume_curve,
                                       plot_compare, scoreboard, summarise,
                                       verdict)
from esnac_jax.job.loop import config_diff
from esnac_jax.job.report import write_json
from esnac_jax.surrogate import SurrogateConfig

METHODS = ('esnac', 'faithful', 'random', 'n2n', 'evolution')
FORMAT = 'esnac_jax.compare/1'
# Config keys a resumed comparison may change: none of them changes a score
# or a proposal.
RESUME_MAY_CHANGE = ('final', 'distributed', 'compile_cache',
                     'xla_cpu_fast_compile', 'data_feed')

# ---- configuration ----------------------------------------------------------


def merged_config(
    config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with config.compare.override merged in; unknown keys in the
  override raise ValueError naming them."""
  out = ml_collections.ConfigDict(config.to_dict())

  def merge(dst: ml_collections.ConfigDict, src: dict, prefix: str) -> None:
    for key, value in src.items():
      if key not in dst:
        raise ValueError(f'config.compare.override.{prefix}{key}: the config '
                         f'has no {prefix}{key}')
      if isinstance(value, dict):
        merge(dst[key], value, f'{prefix}{key}.')
      else:
        dst[key] = value

  merge(out, config.compare.override.to_dict(), '')
  return out


def faithful_config(config: ml_collections.ConfigDict) -> ESNACConfig:
  """The original's ESNAC at config.compare.faithful's size."""
  f = config.compare.faithful
  try:
    surrogate = dataclasses.replace(SurrogateConfig.faithful(),
                                    hidden=f.hidden,
                                    num_layers=f.num_layers,
                                    max_steps=f.max_steps)
    return ESNACConfig.faithful(surrogate=surrogate, pool_size=f.pool_size)
  except ValueError as e:
    raise ValueError(f'config.compare.faithful: {e}') from None


def make_method(name: str, config: ml_collections.ConfigDict, teacher: Arch,
                seed: int, steps: int) -> Searcher:
  """A fresh searcher for one run of method `name`."""
  from esnac_jax.job import from_config
  if name not in METHODS:
    raise ValueError(f'unknown method {name!r}; known: {", ".join(METHODS)}')
  if name == 'faithful':
    return make_searcher('esnac',
                         teacher,
                         from_config.sampler_config(config),
                         seed,
                         from_config.constraints(config),
                         config=faithful_config(config))
  c = ml_collections.ConfigDict(config.to_dict())
  c.search.searcher = name
  c.search.steps = steps
  c.seed = seed
  return from_config.make_searcher(c, teacher)


# ---- one run ----------------------------------------------------------------


def run_method(searcher: Searcher,
               score: Callable[[list[Arch]], list[tuple[Result, bool]]],
               method: str,
               seed: int,
               evaluations: int,
               per_step: int,
               log: Callable[[str], None] = print) -> Run:
  """Asks, scores and tells until `evaluations` candidates are scored."""
  run = Run(method, seed, [], 0.0, 0.0)
  step = 0
  while len(run.rewards) < evaluations:
    step += 1
    t0 = time.perf_counter()
    archs = searcher.ask(min(per_step, evaluations - len(run.rewards)))
    run.propose_s += time.perf_counter() - t0
    results = []
    for r, now in score(list(archs), searcher.records):
      results.append(r)
      run.train_s += r.seconds
      run.trained_now += now
    searcher.tell(archs, results, step)
    run.rewards += [r.reward for r in results]
    run.params += [a.num_params for a in archs]
    run.flops += [a.flops for a in archs]
    run.val_accs += [r.val_acc for r in results]
    run.seconds += [r.seconds for r in results]
    run.epochs += [r.epochs for r in results]
    log(f'  {method} seed {seed} step {step}: {len(run.rewards)}/'
        f'{evaluations} evaluated, best {max(run.rewards):.4f}')
  return run


# ---- the whole comparison ---------------------------------------------------


def compare(
    config: ml_collections.ConfigDict,
    workdir: str,
    methods: Sequence[str],
    seeds: int,
    evaluations: int,
    milestones: Sequence[int],
    log: Callable[[str], None] = print,
    train_budgets: Sequence[float] = ()
) -> dict[str, Any]:
  """Runs (or resumes) the comparison; returns the compare.json document.
  `train_budgets`: training seconds at which the summary also reports each
  method's best (equal training time rather than equal evaluations)."""
  from esnac_jax.job import from_config

  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    raise ValueError(f'unknown methods {unknown}; choose from '
                     f'{", ".join(METHODS)}')
  per_step = config.search.candidates_per_step
  if seeds < 1 or evaluations < 1 or per_step < 1:
    raise ValueError(f'--seeds, --evaluations and config.search.'
                     f'candidates_per_step must be >= 1, got {seeds}, '
                     f'{evaluations}, {per_step}')
  bad = [n for n in milestones if not 1 <= n <= evaluations]
  if bad:
    raise ValueError(f'milestones {bad} are outside 1..{evaluations}')
  if any(not t > 0 for t in train_budgets):
    raise ValueError(f'training-second milestones must be > 0, got '
                     f'{list(train_budgets)}')
  cfg = merged_config(config)
  teacher = from_config.teacher_arch(cfg)
  steps = -(-evaluations // per_step)
  for m in methods:  # every bad setting fails before any training
    make_method(m, cfg, teacher, cfg.seed, steps)
  score, tm = make_scorer(cfg, teacher, workdir, log)
  axis = from_config.constraints(cfg).pareto_axis
  metric, metric_name = best_reward, 'best reward'
  if axis is not None:
    metric = hypervolume_curve(
        axis, teacher.num_params if axis == 'params' else teacher.flops)
    metric_name = f'hypervolume (accuracy against {axis})'

  out_path = os.path.join(workdir, 'compare.json')
  settings = {
      'methods': list(methods),
      'seeds': seeds,
      'evaluations': evaluations,
      'per_step': per_step,
      'config': json.loads(cfg.to_json())
  }
  runs: list[Run] = []
  if os.path.exists(out_path):
    with open(out_path) as f:
      old = json.load(f)
    diff = config_diff(
        old.get('settings', {}).get('config') or {}, settings['config'],
        RESUME_MAY_CHANGE)
    if diff:
      raise ValueError(f'{out_path} holds a comparison made with another '
                       f'config ({"; ".join(diff[:4])}); use another '
                       '--workdir or delete it')
    # A longer run's first `evaluations` are a shorter run's, except for
    # N2N, whose stage split depends on the budget.
    runs = [
        Run(**d)
        for d in old['runs']
        if d['method'] in methods and d['seed'] < cfg.seed +
        seeds and (len(d['rewards']) == evaluations or
                   (len(d['rewards']) > evaluations and d['method'] != 'n2n'))
    ]
    runs = [
        dataclasses.replace(r, rewards=r.rewards[:evaluations]) for r in runs
    ]
  done = {(r.method, r.seed) for r in runs}
  todo = [(m, cfg.seed + i)
          for i in range(seeds)
          for m in methods
          if (m, cfg.seed + i) not in done]
  if done:
    log(f'resuming: {len(done)} runs read from {out_path}, {len(todo)} to go')
  t_start = time.perf_counter()

  def write() -> dict[str, Any]:
    summary = summarise(runs,
                        milestones,
                        metric=metric,
                        metric_name=metric_name,
                        train_budgets=train_budgets)
    doc = {
        'format': FORMAT,
        'settings': settings,
        'teacher': {
            'name': teacher.name,
            'params': teacher.num_params,
            'val_acc': tm['val_acc'],
            'test_acc': tm['test_acc']
        },
        'runs': [r.to_dict() for r in runs],
        'summary': summary
    }
    write_json(out_path, doc)
    plot_compare(os.path.join(workdir, 'compare.png'), runs, metric,
                 metric_name)
    return doc

  doc = write() if runs else {}
  for i, (m, seed) in enumerate(todo):
    searcher = make_method(m, cfg, teacher, seed, steps)
    run = run_method(searcher, score, m, seed, evaluations, per_step, log)
    runs.append(run)
    doc = write()
    elapsed = time.perf_counter() - t_start
    eta = elapsed / (i + 1) * (len(todo) - i - 1)
    log(f'run {i + 1}/{len(todo)} {m} seed {seed}: best '
        f'{max(run.rewards):.4f}; propose {run.propose_s:.0f}s, train '
        f'{run.train_s:.0f}s ({run.trained_now} trained, '
        f'{evaluations - run.trained_now} cached); elapsed '
        f'{elapsed / 60:.1f} min, ETA {eta / 60:.1f} min')
  return doc


# ---- several teachers -------------------------------------------------------


def teacher_dir(name: str) -> str:
  """A folder name for a teacher name (a builder's 'module:function' too)."""
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)


def compare_teachers(
    config: ml_collections.ConfigDict,
    workdir: str,
    teachers: Sequence[str],
    methods: Sequence[str],
    seeds: int,
    evaluations: int,
    milestones: Sequence[int],
    log: Callable[[str], None] = print,
    train_budgets: Sequence[float] = ()
) -> dict[str, Any]:
  """`compare` for each teacher name (zoo or builder, with the config's
  dataset and width) in workdir/<teacher>/, and a scoreboard across them;
  writes workdir/teachers.json. Every teacher is checked before any
  training."""
  from esnac_jax.job import from_config
  configs = {}
  for name in teachers:
    c = ml_collections.ConfigDict(config.to_dict())
    c.teacher.name = name
    if not from_config.builder_takes_width(name):  # built as it is
      c.teacher.width = 1.0
      if 'width' in c.compare.override.get('teacher', {}):
        c.compare.override.teacher.width = 1.0
    from_config.teacher_arch(merged_config(c))  # bad names fail here
    configs[name] = c
  docs = {}
  for i, (name, c) in enumerate(configs.items()):
    log(f'teacher {i + 1}/{len(configs)}: {name}')
    docs[name] = compare(c, os.path.join(workdir, teacher_dir(name)), methods,
                         seeds, evaluations, milestones, log, train_budgets)
  doc = {
      'format':
          FORMAT,
      'teachers':
          list(teachers),
      'summaries': {
          n: d['summary'] for n, d in docs.items()
      },
      'teacher_info': {
          n: d['teacher'] for n, d in docs.items()
      },
      'scoreboard':
          scoreboard({
              n: d['summary'] for n, d in docs.items()
          }, milestones)
  }
  write_json(os.path.join(workdir, 'teachers.json'), doc)
  return doc


def define_flags() -> None:
  from absl import flags
  from esnac_jax.bench.common import define_search_flags
  define_search_flags(
      '/tmp/esnac_compare', 'Where the teacher, the score '
      'cache and the results go; rerun to resume.', ['40', '80', '160'])
  flags.DEFINE_list('methods', list(METHODS), 'Methods to compare.')
  flags.DEFINE_integer('seeds', 5, 'Seeds per method (config.seed + i).')
  flags.DEFINE_integer('evaluations', 160, 'Candidates each run evaluates.')
  flags.DEFINE_list(
      'train_milestones', [], 'Training seconds at which the table '
      'also reports each method\'s best (equal training time; a seed '
      'counts where its first candidate fits the budget).')
  flags.DEFINE_list(
      'teachers', [], 'Compare on each of these teachers (zoo '
      'names or module:function builders) in WORKDIR/<name>/ '
      'and print a scoreboard; empty: the config\'s teacher.')


def main(argv) -> None:
  from esnac_jax.bench.common import run_search_cli

  def run(f, milestones, log):
    try:
      budgets = [float(t) for t in f.train_milestones]
    except ValueError:
      raise ValueError(f'--train_milestones takes seconds, got '
                       f'{",".join(f.train_milestones)}') from None
    if f.teachers:
      doc = compare_teachers(f.config,
                             f.workdir,
                             f.teachers,
                             f.methods,
                             f.seeds,
                             f.evaluations,
                             milestones,
                             log=log,
                             train_budgets=budgets)
      for name, summary in doc['summaries'].items():
        print(f'\n{name}\n' + format_table(summary, milestones))
      print('\n' + format_scoreboard(doc['scoreboard']))
      print(f'\nfigures in {os.path.join(f.workdir, "teachers.json")} and '
            'each teacher\'s folder')
      return
    doc = compare(f.config,
                  f.workdir,
                  f.methods,
                  f.seeds,
                  f.evaluations,
                  milestones,
                  log=log,
                  train_budgets=budgets)
    print('\n' + format_table(doc['summary'], milestones))
    for line in verdict(doc['summary'], f.evaluations):
      print(line)
    print(f'\nfigures in {os.path.join(f.workdir, "compare.json")} and '
          f'compare.png')

  run_search_cli(argv, run)


if __name__ == '__main__':
  from absl import app
  define_flags()
  app.run(main)
