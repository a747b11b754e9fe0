"""What a comparison's runs amount to: best-so-far curves (reward or
hypervolume), per-milestone statistics and verdicts, the printed table,
the plot, and the scoreboard across teachers. Pure functions of `Run`
records (bench.compare makes them), so a saved compare.json can be
summarised again."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from esnac_jax.search import pareto


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
