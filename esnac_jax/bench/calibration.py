"""Benchmark: how well the surrogate predicts, as its history grows.

  python -m esnac_jax.bench.calibration --config=configs/digits.py \\
      --workdir=/tmp/esnac_compare --sizes=1,2,4,8,16,32,64

Scores `--candidates` prior draws of the config's teacher (random search's
candidates of seeds config.seed + i, so a bench.compare workdir with random
search runs already holds their scores and nothing is trained again), then
for each history size n and `--repeats` random splits fits the ESNAC
surrogate (the config's, one head on all n points, with or without the
teacher anchor) and predicts the held-out candidates:

  spearman     rank correlation of the predicted mean with the reward
  within_1sd   share of held-out rewards within one predicted std (0.68 is
               calibrated), within_2sd (0.95)
  ei_pick      the percentile, among the held-out rewards, of the candidate
               expected improvement picks (random picks average 50);
               mean_pick: of the one with the highest predicted mean
  size_only    the rank correlation of compression alone (1 - params /
               teacher params) with the reward: what a model that knows
               only the size could do

Writes WORKDIR/calibration.json and calibration.png; prints the table.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np

from esnac_jax.arch import Arch, batch_features
from esnac_jax.bench import compare as C
from esnac_jax.bench import scoring as S
from esnac_jax.job.report import write_json
from esnac_jax.surrogate import kernel as K
from esnac_jax.surrogate.acquisition import expected_improvement

FORMAT = 'esnac_jax.calibration/1'
VARIANTS = ('anchor', 'no_anchor')


def ranks(x: np.ndarray) -> np.ndarray:
  """0-based ranks (ties broken by position)."""
  out = np.empty(len(x))
  out[np.argsort(x, kind='stable')] = np.arange(len(x))
  return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Rank correlation; 0 when either side is constant."""
  ra, rb = ranks(np.asarray(a)), ranks(np.asarray(b))
  if np.ptp(a) == 0 or np.ptp(b) == 0:
    return 0.0
  return float(np.corrcoef(ra, rb)[0, 1])


def scored_prior_draws(
    cfg: ml_collections.ConfigDict, teacher: Arch, score: Callable, count: int,
    log: Callable[[str], None]) -> tuple[list[Arch], np.ndarray]:
  """`count` distinct candidates from random search runs (seeds
  cfg.seed + i, their batches in order) and their rewards."""
  per_step = max(cfg.search.candidates_per_step, 1)
  archs: list[Arch] = []
  seen: set[Arch] = set()
  seed = cfg.seed
  while len(archs) < count:
    s = C.make_method('random', cfg, teacher, seed, 1)
    for _ in range(-(-count // per_step)):
      batch = [a for a in s.ask(per_step) if a not in seen]
      batch = batch[:count - len(archs)]
      s.tell(batch, [r for r, _ in score(batch)])
      seen |= set(batch)
      archs += batch
      if len(archs) >= count:
        break
    seed += 1
  archs = archs[:count]
  rewards = np.array([r.reward for r, _ in score(archs)], np.float64)
  log(f'{count} prior draws scored: reward {rewards.mean():.3f} +- '
      f'{rewards.std():.3f} (max {rewards.max():.3f})')
  return archs, rewards


def evaluate_split(scfg: K.SurrogateConfig, feats: np.ndarray,
                   teacher_feats: np.ndarray, y: np.ndarray, train: np.ndarray,
                   test: np.ndarray, anchor: bool,
                   key: jax.Array) -> dict[str, float]:
  """Fits one kernel on feats[train] (plus the teacher at reward 0 with
  `anchor`) and scores its predictions of feats[test]."""
  hf = feats[train]
  hy = y[train]
  if anchor:
    hf = np.concatenate([teacher_feats[None], hf])
    hy = np.concatenate([[0.0], hy])
  n = len(hy)
  pf, pm, py, pym = K.pad_history(hf, np.ones(hf.shape[:2], bool), hy,
                                  K.bucket_size(n))
  params = K.init_shared(key, scfg, feats.shape[-1], 1)
  params, _ = K.fit_shared(params, scfg, pf, pm, py, pym[None])
  tf = feats[test]
  mean, std = K.posteriors(params, scfg, pf, pm, py, pym[None], tf,
                           np.ones(tf.shape[:2], bool))
  mean, std = np.asarray(mean[0], np.float64), np.asarray(std[0], np.float64)
  truth = y[test]
  z = np.abs(truth - mean) / np.maximum(std, 1e-12)
  ei = np.asarray(expected_improvement(mean, std, hy.max()))

  def percentile(pick: int) -> float:
    return float(100 * np.mean(truth < truth[pick]))

  return {
      'spearman': spearman(mean, truth),
      'within_1sd': float(np.mean(z <= 1)),
      'within_2sd': float(np.mean(z <= 2)),
      'ei_pick': percentile(int(np.argmax(ei))),
      'mean_pick': percentile(int(np.argmax(mean))),
  }


@dataclasses.dataclass
class Row:
  variant: str
  n: int
  values: dict[str, list[float]]

  def summary(self) -> dict[str, Any]:
    return {
        k: {
            'mean': float(np.mean(v)),
            'std': float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        } for k, v in self.values.items()
    }


def calibration(config: ml_collections.ConfigDict,
                workdir: str,
                sizes: Sequence[int],
                candidates: int,
                repeats: int,
                log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the benchmark; returns the calibration.json document."""
  from esnac_jax.job import from_config
  if not sizes or min(sizes) < 1 or max(sizes) >= candidates or repeats < 1:
    raise ValueError(f'need history sizes >= 1 and below --candidates='
                     f'{candidates}, and repeats >= 1; got {list(sizes)}, '
                     f'{repeats}')
  cfg = C.merged_config(config)
  teacher = from_config.teacher_arch(cfg)
  ecfg = from_config.esnac_config(cfg)
  score, tm = S.make_scorer(cfg, teacher, workdir, log)
  archs, y = scored_prior_draws(cfg, teacher, score, candidates, log)
  kind = ecfg.features
  feats = batch_features(archs, teacher, kind)
  teacher_feats = batch_features([teacher], teacher, kind)[0]
  compression = np.array([1 - a.num_params / teacher.num_params for a in archs])
  rng = np.random.default_rng(cfg.seed)
  rows = {(v, n): Row(v, n, {}) for v in VARIANTS for n in sizes}
  size_only = []
  for r in range(repeats):
    order = rng.permutation(candidates)
    for n in sizes:
      train, test = order[:n], order[n:]
      if n == sizes[0]:
        size_only.append(spearman(compression[test], y[test]))
      for v in VARIANTS:
        key = jax.random.key(cfg.seed + 1000 * r + n)
        m = evaluate_split(ecfg.surrogate, feats, teacher_feats, y, train, test,
                           v == 'anchor', key)
        for k, x in m.items():
          rows[(v, n)].values.setdefault(k, []).append(x)
      log(f'repeat {r + 1}/{repeats}, n={n}: ' +
          '; '.join(f'{v} rho {rows[(v, n)].values["spearman"][-1]:+.2f}'
                    for v in VARIANTS))
  doc = {
      'format':
          FORMAT,
      'teacher': {
          'name': teacher.name,
          'params': teacher.num_params,
          'val_acc': tm['val_acc']
      },
      'candidates':
          candidates,
      'repeats':
          repeats,
      'reward': {
          'mean': float(y.mean()),
          'std': float(y.std()),
          'max': float(y.max())
      },
      'size_only_spearman': {
          'mean': float(np.mean(size_only)),
          'std': float(np.std(size_only))
      },
      'rows': [{
          'variant': row.variant,
          'n': row.n,
          **row.summary()
      } for row in rows.values()]
  }
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, 'calibration.json'), doc)
  plot(os.path.join(workdir, 'calibration.png'), doc)
  return doc


def format_table(doc: dict[str, Any]) -> str:
  head = [
      'variant', 'n', 'spearman', 'within 1 sd', 'within 2 sd', 'EI pick',
      'mean pick'
  ]
  lines = [head]
  for row in doc['rows']:
    lines.append([row['variant'], str(row['n'])] + [
        f'{row[k]["mean"]:.2f} +- {row[k]["std"]:.2f}'
        for k in ('spearman', 'within_1sd', 'within_2sd', 'ei_pick',
                  'mean_pick')
    ])
  widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
  s = doc['size_only_spearman']
  return '\n'.join('  '.join(c.ljust(w)
                             for c, w in zip(r, widths))
                   for r in lines) + (f'\nsize only: spearman '
                                      f'{s["mean"]:.2f} +- {s["std"]:.2f}')


def plot(path: str, doc: dict[str, Any]) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
  for ax, key, label in zip(
      axes, ('spearman', 'within_1sd', 'ei_pick'),
      ('rank correlation (held out)', 'share within 1 predicted sd',
       'EI pick percentile (held out)')):
    for v in VARIANTS:
      rows = [r for r in doc['rows'] if r['variant'] == v]
      n = [r['n'] for r in rows]
      m = np.array([r[key]['mean'] for r in rows])
      s = np.array([r[key]['std'] for r in rows])
      line, = ax.plot(n, m, marker='o', label=v)
      ax.fill_between(n, m - s, m + s, color=line.get_color(), alpha=0.15)
      if key == 'ei_pick':
        ax.plot(n, [r['mean_pick']['mean'] for r in rows],
                ls=':',
                color=line.get_color(),
                label=f'{v}: highest mean')
    ax.set_xscale('log', base=2)
    ax.set_xlabel('history size')
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
  axes[0].axhline(doc['size_only_spearman']['mean'],
                  color='gray',
                  ls='--',
                  label='size only')
  axes[1].axhline(0.68, color='gray', ls='--', label='calibrated')
  axes[2].axhline(50, color='gray', ls='--', label='random pick')
  for ax in axes:
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def define_flags() -> None:
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config',
                                  None,
                                  'Config file, e.g. configs/digits.py.',
                                  lock_config=True)
  flags.DEFINE_string(
      'workdir', '/tmp/esnac_calibration', 'The teacher and '
      'the score cache (a bench.compare workdir of the same config reuses '
      'its scores); the results.')
  flags.DEFINE_list('sizes', ['1', '2', '4', '8', '16', '32', '64'],
                    'History sizes.')
  flags.DEFINE_integer('candidates', 160, 'Prior draws scored in all.')
  flags.DEFINE_integer('repeats', 5, 'Random splits per history size.')


def main(argv) -> None:
  import sys
  from absl import flags, logging
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  f = flags.FLAGS
  if f.config is None:
    raise SystemExit('error: --config is required, e.g. '
                     '--config=configs/digits.py')
  try:
    doc = calibration(f.config, f.workdir, [int(n) for n in f.sizes],
                      f.candidates, f.repeats, lambda s: print(s, flush=True))
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    raise SystemExit(2)
  print('\n' + format_table(doc))
  print(f'\nfigures in {os.path.join(f.workdir, "calibration.json")} and '
        'calibration.png')


if __name__ == '__main__':
  from absl import app
  define_flags()
  app.run(main)
