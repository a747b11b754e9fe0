"""Benchmark: can the host feed keep up with candidate training steps?

  python -m esnac_jax.bench.feed                       # ResNet-18, CIFAR size
  python -m esnac_jax.bench.feed --width=0.25 --steps=3

On CIFAR-shaped data (uint8 32x32x3, random crop 4 and flip, the CIFAR
recipe; random pixels, since only the shapes matter here) it measures:
  * the batches per second each feed builds alone: 'host' (NumPy on one
    host thread) and 'device' (a jitted gather + crop + flip + normalise on
    the default device from a copy of the split there);
  * the distillation step rate of the teacher and of a few random children
    (images/s at the batch size; one program each, compiled first);
  * those steps fed by each feed end to end (batches built while the
    device trains, as the training loops do).
A feed keeps up when it builds batches faster than the steps consume
them. Prints a table and writes --out (JSON).
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax.arch import get_teacher, sample
from esnac_jax.bench.common import write_json
from esnac_jax.data import Dataset, Split
from esnac_jax.data.device_feed import TrainFeed
from esnac_jax.models import inherit, init_variables
from esnac_jax.train import LossConfig, OptimConfig
from esnac_jax.train.optim import make_optimizer
from esnac_jax.train.steps import create_state, logits_fn, train_step_fn

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('teacher', 'resnet18', 'Zoo teacher.')
  flags.DEFINE_float('width', 1.0, 'Teacher width multiplier.')
  flags.DEFINE_integer('images', 45_000, 'Training images (CIFAR: 45,000).')
  flags.DEFINE_integer('batch', 128, 'Batch size.')
  flags.DEFINE_integer('children', 2, 'Random children timed.')
  flags.DEFINE_integer('steps', 10, 'Timed training steps per network.')
  flags.DEFINE_integer('feed_batches', 100, 'Batches timed per feed alone.')
  flags.DEFINE_string('out', 'bench_results/feed.json', 'JSON path.')


def cifar_like(n: int, seed: int = 0) -> Dataset:
  rng = np.random.default_rng(seed)
  train = Split(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 100, n).astype(np.int32))
  small = Split(train.images[:256], train.labels[:256])
  return Dataset('cifar-like', train, small, small,
                 np.array([129.3, 124.1, 112.4], np.float32),
                 np.array([68.2, 65.4, 70.4], np.float32), 100, 4, True)


def _first(batches: Iterator, count: int) -> Iterator:
  for i, b in enumerate(batches):
    if i == count:
      return
    yield b


def feed_rate(feed: TrainFeed, batch: int, count: int) -> float:
  """Images per second the feed builds alone (after a warm-up batch)."""
  jax.block_until_ready(next(feed(batch, 0, 0))[0])
  t = time.perf_counter()
  last = None
  for x, _ in _first(feed(batch, 0, 1), count):
    last = x
  jax.block_until_ready(last)
  return count * batch / (time.perf_counter() - t)


def step_rate(step: Callable, state, batches: Iterator, count: int) -> float:
  """Images per second of `count` training steps on `batches`."""
  state = jax.tree_util.tree_map(jnp.copy, state)  # the step donates it
  t = time.perf_counter()
  n = 0
  for x, y in _first(batches, count):
    state = step(state, x, y)
    n += len(y)
  jax.block_until_ready(state)
  return n / (time.perf_counter() - t)


def main(argv) -> None:
  del argv
  ds = cifar_like(FLAGS.images)
  teacher = get_teacher(FLAGS.teacher, 100, 3, FLAGS.width, 32)
  tvars = init_variables(teacher, jax.random.key(0))
  rng = np.random.default_rng(0)
  nets = [('teacher', teacher)] + [
      (f'child {i}', sample(teacher, rng)) for i in range(FLAGS.children)
  ]
  feeds = {k: TrainFeed(ds, k) for k in ('host', 'device')}
  print(
      f'{jax.devices()[0].device_kind}: {FLAGS.teacher} width '
      f'{FLAGS.width} ({teacher.num_params:,} params), batch {FLAGS.batch}',
      flush=True)
  doc = {
      'device': jax.devices()[0].device_kind,
      'teacher': FLAGS.teacher,
      'width': FLAGS.width,
      'batch': FLAGS.batch,
      'feed_images_per_s': {},
      'networks': []
  }
  for kind, feed in feeds.items():
    rate = feed_rate(feed, FLAGS.batch, FLAGS.feed_batches)
    doc['feed_images_per_s'][kind] = rate
    print(f'  {kind} feed alone: {rate:,.0f} images/s', flush=True)
  tx = make_optimizer(OptimConfig('adam', 1e-3), 100, 1)
  t_logits = logits_fn(teacher)
  fixed = next(feeds['host'](FLAGS.batch, 0, 0))
  for name, arch in nets:
    fn = train_step_fn(arch, tx, LossConfig('mse'))

    def step(state, x, y, fn=fn):
      return fn(state, x, y, t_logits(tvars, x))[0]

    state = create_state(inherit(teacher, arch, tvars), tx)
    state = jax.block_until_ready(step(state, *fixed))  # compile
    row = {
        'name':
            name,
        'params':
            arch.num_params,
        'fixed_batch':
            step_rate(step, state, iter([fixed] * FLAGS.steps), FLAGS.steps)
    }
    for kind, feed in feeds.items():
      row[kind] = step_rate(step, state, feed(FLAGS.batch, 0, 2), FLAGS.steps)
    doc['networks'].append(row)
    print(
        f'  {name} ({row["params"]:,} params): steps alone '
        f'{row["fixed_batch"]:,.0f} images/s; fed by host '
        f'{row["host"]:,.0f}, by device {row["device"]:,.0f}',
        flush=True)
  write_json(FLAGS.out, doc)
  print(f'figures in {FLAGS.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
