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

import numpy as np
import ml_collections

from esnac_jax.arch import Arch
from esnac_jax.search import ESNACConfig, Result, Searcher, make_searcher
from esnac_jax.search import pareto
from esnac_jax.bench.scoring import make_scorer
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


@dataclasses.dataclass
class Run:
  method: str
  seed: int
  rewards: list[float]  # in evaluation order
  propose_s: float  # time in ask (surrogate fitting, pools, policies)
  train_s: float  # distillation seconds of its candidates
  trained_now: int = 0  # candidates this process trained (not cached)
  # each candidate's size and validation accuracy (for the hypervolume)
  params: list[int] = dataclasses.field(default_factory=list)
  flops: list[int] = dataclasses.field(default_factory=list)
  val_accs: list[float] = dataclasses.field(default_factory=list)
  # each candidate's training seconds (for budgets in training time)
  seconds: list[float] = dataclasses.field(default_factory=list)
  # each candidate's distillation epochs (fewer when halving stopped it)
  epochs: list[int] = dataclasses.field(default_factory=list)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


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


# ---- statistics -------------------------------------------------------------


def best_curve(rewards: Sequence[float]) -> np.ndarray:
  """Best reward after each evaluation."""
  return np.maximum.accumulate(np.asarray(rewards, float))


def evals_to_reach(rewards: Sequence[float], target: float) -> int | None:
  """Evaluations a run needed for a reward >= target (None: never)."""
  return _reach(best_curve(rewards), target)


def _reach(curve: np.ndarray, target: float) -> int | None:
  hit = np.nonzero(curve >= target)[0]
  return int(hit[0]) + 1 if hit.size else None


def best_reward(run: Run) -> np.ndarray:
  """The default metric: best reward after each evaluation."""
  return best_curve(run.rewards)


def hypervolume_curve(axis: str,
                      teacher_size: int) -> Callable[[Run], np.ndarray]:
  """The metric of the pareto objectives: after each evaluation, the
  hypervolume of the candidates' front of validation accuracy against size
  (a fraction of the teacher's `axis`, 'params' or 'flops')."""

  def curve(run: Run) -> np.ndarray:
    sizes = np.asarray(getattr(run, axis), float) / teacher_size
    if len(sizes) != len(run.rewards):
      raise ValueError(f'run {run.method} seed {run.seed} holds no candidate '
                       'sizes (made before the hypervolume was recorded); '
                       'rerun it in another --workdir')
    return np.array([
        pareto.hypervolume(sizes[:n], run.val_accs[:n])
        for n in range(1,
                       len(sizes) + 1)
    ])

  return curve


def at_train_seconds(run: Run, curve: np.ndarray,
                     budget: float) -> float | None:
  """The curve's value after the last evaluation whose cumulative training
  seconds are within `budget` (None: the first already exceeds it, or the
  run holds no per-candidate seconds)."""
  if len(run.seconds) != len(curve):
    return None
  within = np.nonzero(np.cumsum(run.seconds) <= budget)[0]
  return float(curve[within[-1]]) if within.size else None


def summarise(
    runs: list[Run],
    milestones: Sequence[int],
    reference: str = 'random',
    metric: Callable[[Run], np.ndarray] = best_reward,
    metric_name: str = 'best reward',
    train_budgets: Sequence[float] = ()
) -> dict[str, Any]:
  """Per method: mean and std (over seeds, ddof=1) of the metric (the best
  reward by default) at each milestone, and at each budget of training
  seconds (`train_budgets`: equal training time, where cheaper candidates
  count); the evaluations each seed needed to reach the reference method's
  final value (mean over its seeds); mean proposal/training time.
  """
  methods = list(dict.fromkeys(r.method for r in runs))
  by = {m: [r for r in runs if r.method == m] for m in methods}
  curves = {id(r): metric(r) for r in runs}
  target = None
  if reference in by:
    target = float(np.mean([curves[id(r)][-1] for r in by[reference]]))
  out: dict[str, Any] = {
      'metric': metric_name,
      'reference': reference,
      'target': target,
      'methods': {}
  }
  for m, rs in by.items():
    row: dict[str, Any] = {'seeds': [r.seed for r in rs], 'best': {}}
    for n in milestones:
      vals = [curves[id(r)][n - 1] for r in rs if len(r.rewards) >= n]
      row['best'][str(n)] = _stats(vals)
    if train_budgets:
      row['best_at_train_s'] = {}
      for t in train_budgets:
        vals = [at_train_seconds(r, curves[id(r)], t) for r in rs]
        row['best_at_train_s'][f'{t:g}'] = _stats(
            [v for v in vals if v is not None])
    if target is not None:
      reach = [_reach(curves[id(r)], target) for r in rs]
      got = sorted(x for x in reach if x is not None)
      row['to_reference_best'] = reach
      # the median over seeds, a seed that never got there counting as inf
      row['to_reference_best_median'] = (float(
          np.median(got + [np.inf] *
                    (len(reach) - len(got)))) if reach else None)
    row['propose_s'] = float(np.mean([r.propose_s for r in rs]))
    row['train_s'] = float(np.mean([r.train_s for r in rs]))
    if all(r.epochs for r in rs):  # candidate-epochs of distillation per run
      row['train_epochs'] = float(np.mean([sum(r.epochs) for r in rs]))
    out['methods'][m] = row
  return out


def _stats(vals: Sequence[float]) -> dict[str, Any]:
  return {
      'mean': float(np.mean(vals)) if vals else None,
      'std': float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
      'n': len(vals)
  }


def verdict(summary: dict[str, Any],
            evaluations: int,
            method: str = 'esnac') -> list[str]:
  """The issue's targets for `method`: beats every other method's mean best
  at `evaluations` by more than that method's std; reaches the reference's
  final best in <= half the evaluations (median over seeds)."""
  rows = summary['methods']
  if method not in rows:
    return []
  key = str(evaluations)
  mine = rows[method]['best'][key]['mean']
  lines = []
  for m, row in rows.items():
    if m == method or m == 'faithful':
      continue
    other = row['best'][key]
    ok = mine is not None and other['mean'] is not None and \
        mine - other['mean'] > other['std']
    lines.append(f'{method} vs {m} at {evaluations}: {mine:.4f} vs '
                 f'{other["mean"]:.4f} +- {other["std"]:.4f} -> '
                 f'{"beats it" if ok else "does NOT beat it"} by more than '
                 'its std')
  med = rows[method].get('to_reference_best_median')
  if med is not None:
    ok = med <= evaluations / 2
    lines.append(f'{method} reaches {summary["reference"]}\'s final best '
                 f'({summary["target"]:.4f}) in a median of '
                 f'{_evals(med)} evaluations -> '
                 f'{"within" if ok else "NOT within"} half the budget '
                 f'({evaluations // 2})')
  return lines


def _evals(x: float | None) -> str:
  return '-' if x is None else ('never' if not np.isfinite(x) else f'{x:.0f}')


def format_table(summary: dict[str, Any], milestones: Sequence[int]) -> str:
  reach_col = summary['target'] is not None
  col = 'hv' if summary.get('metric', '').startswith('hypervolume') else 'best'
  budgets = list(
      next(iter(summary['methods'].values()), {}).get('best_at_train_s', {}))
  head = ['method'] + [f'{col}@{n}' for n in milestones] + [
      f'{col}@{t}s train' for t in budgets
  ] + ([f'evals to {summary["reference"]} best']
       if reach_col else []) + ['propose s', 'train s']
  epochs_col = all('train_epochs' in r for r in summary['methods'].values())
  head += ['train epochs'] if epochs_col else []
  rows = [head]
  for m, row in summary['methods'].items():
    cells = [m]
    for n in milestones:
      cells.append(_cell(row['best'][str(n)]))
    for t in budgets:  # with the seeds that fit the budget
      cells.append(_cell(row.get('best_at_train_s', {}).get(t), seeds=True))
    reach = row.get('to_reference_best')
    if reach_col:
      cells.append('-' if reach is
                   None else f'{_evals(row["to_reference_best_median"])} '
                   f'({sum(x is not None for x in reach)}/{len(reach)} '
                   'seeds)')
    cells += [f'{row["propose_s"]:.1f}', f'{row["train_s"]:.1f}']
    cells += [f'{row["train_epochs"]:.0f}'] if epochs_col else []
    rows.append(cells)
  widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
  return '\n'.join(
      '  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def _cell(b: dict | None, seeds: bool = False) -> str:
  if not b or b['mean'] is None:
    return '-'
  return f'{b["mean"]:.4f} +- {b["std"]:.4f}' + (f' ({b["n"]})'
                                                 if seeds else '')


def plot_compare(path: str,
                 runs: list[Run],
                 metric: Callable[[Run], np.ndarray] = best_reward,
                 metric_name: str = 'best reward') -> None:
  """The metric (best reward) vs evaluations: mean and one-std band per
  method."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7.0, 4.4))
  for m in dict.fromkeys(r.method for r in runs):
    curves = [metric(r) for r in runs if r.method == m]
    n = min(len(c) for c in curves)
    c = np.stack([x[:n] for x in curves])
    mean, std = c.mean(0), c.std(0)
    x = np.arange(1, n + 1)
    line, = ax.plot(x, mean, label=f'{m} ({len(curves)} seeds)')
    ax.fill_between(x,
                    mean - std,
                    mean + std,
                    color=line.get_color(),
                    alpha=0.15)
  ax.set_xlabel('evaluated candidates')
  ax.set_ylabel(f'{metric_name} so far')
  ax.grid(alpha=0.3)
  ax.legend(loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


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


def scoreboard(summaries: dict[str, dict[str, Any]],
               milestones: Sequence[int],
               method: str = 'esnac',
               reference: str = 'random') -> dict[str, dict[str, str]]:
  """Per milestone and teacher: 'win' when `method`'s mean best exceeds
  the reference's by more than the reference's seed std, 'loss' when it
  trails by more than that, else 'tie'."""
  board: dict[str, dict[str, str]] = {}
  for n in milestones:
    row = {}
    for teacher, summary in summaries.items():
      rows = summary['methods']
      if method not in rows or reference not in rows:
        continue
      mine, ref = rows[method]['best'][str(n)], rows[reference]['best'][str(n)]
      if mine['mean'] is None or ref['mean'] is None:
        continue
      gap = mine['mean'] - ref['mean']
      row[teacher] = ('win' if gap > ref['std'] else
                      'loss' if gap < -ref['std'] else 'tie')
    board[str(n)] = row
  return board


def format_scoreboard(board: dict[str, dict[str, str]]) -> str:
  lines = ['esnac vs random (by more than random\'s seed std):']
  for n, row in board.items():
    counts = {
        k: sum(v == k for v in row.values()) for k in ('win', 'tie', 'loss')
    }
    detail = ', '.join(f'{t}: {v}' for t, v in row.items())
    lines.append(f'  @{n}: {counts["win"]} wins, {counts["tie"]} ties, '
                 f'{counts["loss"]} losses ({detail})')
  return '\n'.join(lines)


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
