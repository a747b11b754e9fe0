"""Benchmark: searched students against hand-designed networks of the same size.

  python -m esnac_jax.main --config=configs/digits.py --workdir=/tmp/digits
  python -m esnac_jax.bench.handdesigned --config=configs/digits.py \\
      --workdir=/tmp/digits --students=chosen,front --seeds=3

For each student of a finished job (the chosen one, the members of its
accuracy-params front, or candidate indices) it builds networks with the
same parameter count:
  thinned      the teacher with every width knob shrunk by one ratio (a
               child of the teacher, so it inherits the teacher's weights
               as the searched student does; uniform width pruning);
  mobilenetv2, shufflenet, ... (zoo names)
               width-scaled to the closest parameter count, from scratch;
  scratch      the searched architecture itself from a fresh init, to
               separate the architecture from weight inheritance.
Every network, the searched student included, is trained with the job's
budget: config.distill (from the teacher) then config.final, and is tested
once at its best validation epoch. --seeds repeats everything.

Writes OUT/handdesigned.json and handdesigned.png; prints the table.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np

from esnac_jax.arch import Arch
from esnac_jax.arch.operators import shrink, shrunk_width
from esnac_jax.arch.widths import width_groups
from esnac_jax.arch.zoo import TEACHERS

FORMAT = 'esnac_jax.handdesigned/1'
SEARCHED, SCRATCH, THINNED = 'searched', 'scratch', 'thinned'
BASELINES = (THINNED, SCRATCH) + tuple(sorted(TEACHERS))
# Widths tried for a zoo family: geometric from 1/100 to 4x the full net.
_WIDTHS = np.geomspace(0.01, 4.0, 160)


def thinned(teacher: Arch, params: int) -> Arch:
  """The teacher with all width knobs shrunk by the one ratio whose
  parameter count is closest to `params`."""
  groups = width_groups(teacher, teacher)
  if not groups:
    raise ValueError(f'teacher {teacher.name} has no width to thin')
  best = None
  for r in np.linspace(0.0, 0.995, 200):
    arch = shrink(teacher, teacher, [(g, shrunk_width(g, r)) for g in groups])
    gap = abs(math.log(arch.num_params / params))
    if best is None or gap < best[0]:
      best = (gap, arch)
  return best[1]


def width_scaled(family: str, teacher: Arch, params: int) -> Arch:
  """Zoo network `family` for the teacher's input and classes, at the
  width whose parameter count is closest to `params`."""
  h, w, c = teacher.input_shape
  if h != w:
    raise ValueError(f'{family} needs square inputs, the teacher takes '
                     f'{teacher.input_shape}')
  build = TEACHERS[family]
  best, seen = None, set()
  for width in _WIDTHS:
    try:
      arch = build(num_classes=teacher.output_shape[0],
                   in_channels=c,
                   width=float(width),
                   input_size=h)
    except ValueError:  # too narrow or too small an input for this family
      continue
    if arch.num_params in seen:
      continue
    seen.add(arch.num_params)
    gap = abs(math.log(arch.num_params / params))
    if best is None or gap < best[0]:
      best = (gap, arch)
  if best is None:
    raise ValueError(f'{family} cannot be built for {h}x{w}x{c} inputs at '
                     'any width')
  return best[1]


def students(results: dict[str, Any], which: Sequence[str]) -> list[int]:
  """Candidate indices of results.json for --students: 'chosen', 'front'
  (the accuracy-params front) or indices; in order, without repeats."""
  n = len(results.get('candidates', []))
  out: list[int] = []
  for w in which:
    if w == 'chosen':
      chosen = (results.get('final') or {}).get('chosen')
      if not chosen:
        raise ValueError('results.json has no chosen student (the final '
                         'stage trained none); pass candidate indices')
      out.append(int(chosen['index']))
    elif w == 'front':
      front = (results.get('pareto') or {}).get('params')
      if not front:
        raise ValueError('results.json has no accuracy-params front (written '
                         'by an older version?); pass candidate indices')
      out += [int(m['index']) for m in front]
    else:
      try:
        i = int(w)
      except ValueError:
        raise ValueError(f"--students takes 'chosen', 'front' or candidate "
                         f'indices, got {w!r}') from None
      if not 0 <= i < n:
        raise ValueError(f'candidate {i} is not in results.json (it holds '
                         f'{n} candidates)')
      out.append(i)
  return list(dict.fromkeys(out))


def contenders(teacher: Arch, student: Arch,
               baselines: Sequence[str]) -> dict[str, tuple[Arch, bool]]:
  """name -> (architecture, inherits the teacher's weights) for one
  student: the searched one first, then each baseline."""
  out = {SEARCHED: (student, True)}
  for b in baselines:
    if b == THINNED:
      out[b] = (thinned(teacher, student.num_params), True)
    elif b == SCRATCH:
      out[b] = (student, False)
    else:
      out[b] = (width_scaled(b, teacher, student.num_params), False)
  return out


def train_and_test(arch: Arch, inherits: bool, teacher: Arch,
                   teacher_vars: dict, ds, distill_cfg, final_cfg, seed: int,
                   select: str, bn_stats: str) -> dict[str, float]:
  """The job's budget for one network: distillation from the teacher,
  then final training; the test accuracy of the best validation epoch."""
  from esnac_jax.models import inherit
  from esnac_jax.models.network import init_variables
  from esnac_jax.train import accuracy_on_test
  from esnac_jax.train.loop import train_many
  if inherits:
    start = inherit(teacher, arch, teacher_vars, select, bn_stats)
  else:
    start = jax.device_get(init_variables(arch, jax.random.key(seed)))
  pair = (teacher, teacher_vars)
  [d] = train_many([arch], [start], ds, distill_cfg, seed, teacher=pair)
  kd = final_cfg.loss.kind != 'ce'
  [f] = train_many([arch], [d.variables],
                   ds,
                   final_cfg,
                   seed,
                   teacher=pair if kd else None,
                   label='final')
  test = accuracy_on_test(arch, f.variables, ds, final_cfg)
  return {
      'distill_val_acc': d.val_acc,
      'val_acc': f.val_acc,
      'test_acc': test,
      'seconds': d.seconds + f.seconds
  }


def _stats(xs: Sequence[float]) -> dict[str, float]:
  """Mean and std over seeds (ddof=1, as bench.compare)."""
  std = float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0
  return {'mean': float(np.mean(xs)), 'std': std}


def handdesigned(config: ml_collections.ConfigDict,
                 workdir: str,
                 which: Sequence[str],
                 baselines: Sequence[str],
                 seeds: int,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the benchmark on the finished job in `workdir`; returns the
  handdesigned.json document."""
  from esnac_jax import paths
  from esnac_jax.job import from_config
  from esnac_jax.search.reward import reward
  from esnac_jax.train.teacher import restore_teacher
  if not workdir:
    raise ValueError('--workdir is required: the workdir of a finished job')
  if seeds < 1:
    raise ValueError(f'--seeds must be >= 1, got {seeds}')
  bad = [b for b in baselines if b not in BASELINES]
  if bad:
    raise ValueError(f'unknown baselines {bad}; use any of '
                     f'{", ".join(BASELINES)}')
  path = paths.join(workdir, 'results.json')
  if not paths.path(path).exists():
    raise ValueError(f'{path} does not exist: run python -m esnac_jax.main '
                     f'with this config and --workdir={workdir} first')
  import json
  results = json.loads(paths.path(path).read_text())
  teacher = from_config.teacher_arch(config)
  if Arch.from_dict(results['teacher']['arch']) != teacher:
    raise ValueError(f"{path} was written for another teacher than the "
                     f"config's ({teacher.name}); pass the job's config")
  indices = students(results, which)
  chosen = (results.get('final') or {}).get('chosen')
  cands = results['candidates']
  plan = []
  for i in indices:  # every architecture is built before any training
    arch = Arch.from_dict(cands[i]['arch'])
    plan.append((i, contenders(teacher, arch, baselines)))
  distill_cfg = from_config.train_config(config.distill, 'distill',
                                         config.get('data_feed', 'auto'))
  final_cfg = from_config.train_config(config.final, 'final',
                                       config.get('data_feed', 'auto'))
  teacher_vars, _ = restore_teacher(paths.join(workdir, 'teacher'), teacher)
  ds = from_config.config_dataset(config)
  t_test = results['teacher']['test_acc']
  total = sum(len(c) for _, c in plan) * seeds
  done, rows = 0, []
  for i, nets in plan:
    for name, (arch, inherits) in nets.items():
      runs = []
      for s in range(seeds):
        seed = config.seed + s
        r = train_and_test(arch, inherits, teacher, teacher_vars, ds,
                           distill_cfg, final_cfg, seed, config.distill.select,
                           config.distill.bn_stats)
        runs.append(dict(r, seed=seed))
        done += 1
        log(f'[{done}/{total}] student {i} {name} seed {seed}: '
            f'{arch.num_params:,} params, test acc {r["test_acc"]:.4f} '
            f'({r["seconds"]:.0f}s)')
      accs = [r['test_acc'] for r in runs]
      rows.append({
          'student':
              i,
          'network':
              name,
          'inherits':
              inherits,
          'params':
              arch.num_params,
          'flops':
              arch.flops,
          'times':
              teacher.num_params / arch.num_params,
          'test_acc':
              _stats(accs),
          'test_reward':
              _stats([
                  reward(a, t_test, arch.num_params, teacher.num_params)
                  for a in accs
              ]),
          'runs':
              runs,
          'arch':
              arch.to_dict()
      })
  return {
      'format': FORMAT,
      'workdir': workdir,
      'teacher': {
          'name': teacher.name,
          'params': teacher.num_params,
          'test_acc': t_test
      },
      'budget': {
          'distill_epochs': distill_cfg.epochs,
          'final_epochs': final_cfg.epochs
      },
      'seeds': seeds,
      'job_chosen': {
          k: chosen[k] for k in ('index', 'params', 'test_acc')
      } if chosen else None,
      'rows': rows
  }


def format_table(doc: dict[str, Any]) -> str:
  """A markdown table: one row per network, grouped by student."""
  lines = [
      '| student | network | params | x smaller | test acc | test reward |',
      '|---|---|---|---|---|---|'
  ]
  for r in doc['rows']:
    a, w = r['test_acc'], r['test_reward']
    lines.append(f'| {r["student"]} | {r["network"]} | {r["params"]:,} | '
                 f'{r["times"]:.1f} | {a["mean"]:.4f} ± {a["std"]:.4f} | '
                 f'{w["mean"]:.4f} ± {w["std"]:.4f} |')
  return '\n'.join(lines)


def plot(path: str, doc: dict[str, Any]) -> None:
  """Test accuracy against parameters, one series per network kind."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  kinds = list(dict.fromkeys(r['network'] for r in doc['rows']))
  for k in kinds:
    rs = sorted((r for r in doc['rows'] if r['network'] == k),
                key=lambda r: r['params'])
    ax.errorbar([r['params'] for r in rs], [r['test_acc']['mean'] for r in rs],
                yerr=[r['test_acc']['std'] for r in rs],
                marker='o',
                capsize=3,
                label=k)
  t = doc['teacher']
  ax.axhline(t['test_acc'], color='gray', ls='--', lw=1, label='teacher')
  ax.set_xscale('log')
  ax.set_xlabel('parameters')
  ax.set_ylabel('test accuracy')
  ax.set_title(f'students of {t["name"]} ({t["params"]:,} params) at the '
               'same size')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv) -> None:
  from esnac_jax.bench.common import run_search_cli
  from esnac_jax.job.report import write_json

  def run(f, _milestones, log):
    doc = handdesigned(f.config, f.workdir, f.students, f.baselines, f.seeds,
                       log)
    os.makedirs(f.out, exist_ok=True)
    write_json(os.path.join(f.out, 'handdesigned.json'), doc)
    plot(os.path.join(f.out, 'handdesigned.png'), doc)
    log(format_table(doc))
    log(f'wrote {f.out}/handdesigned.json and handdesigned.png')

  run_search_cli(argv, run)


def define_flags() -> None:
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config',
                                  None, 'The job\'s config file, e.g. '
                                  'configs/digits.py.',
                                  lock_config=True)
  flags.DEFINE_string(
      'workdir', '', 'Workdir of a finished job (python -m '
      'esnac_jax.main) with the same config.')
  flags.DEFINE_list(
      'students', ['chosen'],
      "'chosen', 'front' (the accuracy-params front) and/or "
      'candidate indices of results.json.')
  flags.DEFINE_list('baselines',
                    [THINNED, SCRATCH, 'mobilenetv2', 'shufflenet'],
                    f'Networks to compare with: {", ".join(BASELINES)}.')
  flags.DEFINE_integer('seeds', 3, 'Trainings of each network '
                       '(config.seed + i).')
  flags.DEFINE_string('out', 'bench_results', 'Folder for handdesigned.json '
                      'and handdesigned.png.')


if __name__ == '__main__':
  from absl import app
  define_flags()
  app.run(main)
