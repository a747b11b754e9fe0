"""What a search leaves for people: results.json, plots, TensorBoard."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from esnac_jax.arch import Arch
from esnac_jax.search.record import Record

RESULTS_FORMAT = 'esnac_jax.results/1'


def pareto_front(params: list[int], accs: list[float]) -> list[int]:
  """Indices of points no other point beats on both fewer parameters and
  higher accuracy, sorted by parameters."""
  order = sorted(range(len(params)), key=lambda i: (params[i], -accs[i]))
  front, best = [], -np.inf
  for i in order:
    if accs[i] > best:
      front.append(i)
      best = accs[i]
  return front


def results_dict(config: dict,
                 teacher: Arch,
                 teacher_metrics: dict,
                 records: list[Record],
                 steps_done: int,
                 timing: dict,
                 final: dict | None,
                 data: dict | None = None,
                 provenance: dict | None = None) -> dict[str, Any]:
  """The results.json document (schema in the guide). `data`: the
  dataset's name, image shape, classes and normalisation (data_section);
  `provenance`: what produced the run (esnac_jax.provenance)."""
  tp = teacher.num_params
  cands = [
      dict(index=i,
           step=r.step,
           params=r.params,
           flops=r.flops,
           compression=1 - r.params / tp,
           times=tp / r.params,
           val_acc=r.val_acc,
           reward=r.reward,
           best_epoch=r.best_epoch,
           arch=r.arch.to_dict()) for i, r in enumerate(records)
  ]
  best = max(cands, key=lambda c: (c['reward'], -c['index']), default=None)
  return {
      'format':
          RESULTS_FORMAT,
      'config':
          config,
      'data':
          data,
      'provenance':
          provenance,
      'teacher': {
          'name': teacher.name,
          'params': tp,
          'flops': teacher.flops,
          'val_acc': teacher_metrics['val_acc'],
          'test_acc': teacher_metrics['test_acc'],
          'arch': teacher.to_dict()
      },
      'steps_done':
          steps_done,
      'evaluations':
          len(records),
      'timing':
          timing,
      'best':
          None if best is None else {
              k: v for k, v in best.items() if k != 'arch'
          },
      'candidates':
          cands,
      'final':
          final,
  }


def data_section(ds: Any) -> dict[str, Any]:
  """What a reader of the results needs to feed a model raw images: the
  per-channel mean and std (raw image units) it was trained with."""
  return {
      'name': ds.name,
      'image_shape': list(ds.image_shape),
      'num_classes': ds.num_classes,
      'mean': [float(v) for v in np.ravel(ds.mean)],
      'std': [float(v) for v in np.ravel(ds.std)]
  }


def write_json(path: str, doc: Any) -> None:
  """Writes `doc` as JSON, atomically: a reader never sees a half-written
  file. Creates the parent directory."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    json.dump(doc, f, indent=1)
  os.replace(tmp, path)


def plot_pareto(path: str, teacher_params: int, teacher_acc: float,
                records: list[Record]) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  params = [r.params for r in records]
  accs = [r.val_acc for r in records]
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  sc = ax.scatter(params,
                  accs,
                  c=[r.step for r in records],
                  cmap='viridis',
                  s=18,
                  label='candidates')
  fig.colorbar(sc, ax=ax, label='search step')
  front = pareto_front(params + [teacher_params], accs + [teacher_acc])
  ax.step([(params + [teacher_params])[i] for i in front],
          [(accs + [teacher_acc])[i] for i in front],
          where='post',
          color='tab:red',
          label='Pareto front')
  ax.scatter([teacher_params], [teacher_acc],
             marker='*',
             s=160,
             color='tab:orange',
             label='teacher',
             zorder=3)
  ax.set_xscale('log')
  _finish(fig, ax, path, 'parameters', 'validation accuracy (distilled)')


def plot_reward(path: str, records: list[Record]) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  rewards = np.array([r.reward for r in records])
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  n = np.arange(1, len(rewards) + 1)
  ax.plot(n, rewards, '.', color='0.6', label='candidate')
  ax.plot(n,
          np.maximum.accumulate(rewards),
          color='tab:blue',
          label='best so far')
  _finish(fig, ax, path, 'evaluations', 'reward f(x)')


def _finish(fig, ax, path: str, xlabel: str, ylabel: str) -> None:
  """Labels, legend and grid, then writes the figure and frees it."""
  import matplotlib.pyplot as plt
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.legend(loc='lower right')
  ax.grid(alpha=0.3)
  fig.tight_layout()
  tmp = f'{path}.tmp.png'  # atomic, like write_json
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


class MetricWriter:
  """TensorBoard scalars (tensorboardX: event files without TensorFlow)."""

  def __init__(self, logdir: str):
    from tensorboardX import SummaryWriter
    self._w = SummaryWriter(logdir)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    for k, v in scalars.items():
      self._w.add_scalar(k, float(v), step)
    self._w.flush()

  def close(self) -> None:
    self._w.close()
