"""What a search leaves for people: results.json, plots, TensorBoard."""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

import numpy as np

from esnac_jax import paths
from esnac_jax.arch import Arch
from esnac_jax.search import pareto
from esnac_jax.search.record import Record

RESULTS_FORMAT = 'esnac_jax.results/1'


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
           epochs=r.epochs,
           curve=list(r.curve),
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
      'pareto':
          pareto_section(cands),
      'final':
          final,
  }


def pareto_section(cands: list[dict]) -> dict[str, list[dict]]:
  """The candidates no other beats on both size and validation accuracy,
  by parameters and by FLOPs, smallest first: the students to choose
  among (train any of them fully with final.indices)."""
  keys = ('index', 'params', 'flops', 'times', 'val_acc')
  accs = [c['val_acc'] for c in cands]
  return {
      size: [{
          k: cands[i][k] for k in keys
      } for i in pareto.front([c[size] for c in cands], accs)
            ] for size in ('params', 'flops')
  }


def data_section(ds: Any, image_size: int = 0) -> dict[str, Any]:
  """What a reader of the results needs to feed a model raw images: the
  per-channel mean and std (raw image units) it was trained with, and the
  size raw images were resized to (0: none)."""
  return {
      'name': ds.name,
      'image_shape': list(ds.image_shape),
      'image_size': image_size,
      'num_classes': ds.num_classes,
      'mean': [float(v) for v in np.ravel(ds.mean)],
      'std': [float(v) for v in np.ravel(ds.std)]
  }


def write_json(path: str, doc: Any) -> None:
  """Writes `doc` as JSON, atomically: a reader never sees a half-written
  file. Creates the parent directory."""
  paths.write_text(path, json.dumps(doc, indent=1))


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
  front = pareto.front(params + [teacher_params], accs + [teacher_acc])
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
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=110)
  plt.close(fig)
  paths.write_bytes(path, buf.getvalue())  # atomic, like write_json


class MetricWriter:
  """TensorBoard scalars (tensorboardX: event files without TensorFlow).

  For a logdir on an object store (gs://...) the events are written to a
  local folder and its files copied there after every write, so a
  preempted run leaves its curves behind; a resumed run adds a new event
  file beside the old ones, as TensorBoard expects.
  """

  def __init__(self, logdir: str):
    from tensorboardX import SummaryWriter
    self._dest = paths.path(logdir) if paths.is_remote(logdir) else None
    self._local = tempfile.mkdtemp(prefix='esnac_tb_') if self._dest \
        else logdir
    self._w = SummaryWriter(self._local)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    for k, v in scalars.items():
      self._w.add_scalar(k, float(v), step)
    self._w.flush()
    self._upload()

  def write_text(self, tag: str, text: str) -> None:
    """A text summary (TensorBoard's Text tab), e.g. what made the run."""
    self._w.add_text(tag, f'```\n{text}\n```', 0)
    self._w.flush()
    self._upload()

  def close(self) -> None:
    self._w.close()
    self._upload()

  def _upload(self) -> None:
    if self._dest is None:
      return
    for name in os.listdir(self._local):
      with open(os.path.join(self._local, name), 'rb') as f:
        paths.write_bytes(self._dest / name, f.read())
