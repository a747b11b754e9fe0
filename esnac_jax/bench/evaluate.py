"""Benchmark: candidate scoring throughput (short distillation runs).

  python -m esnac_jax.bench.evaluate                 # digits + ResNet-18/CIFAR
  python -m esnac_jax.bench.evaluate --setups=digits --ks=1,4

For K = 1, 4, 8 random children of a teacher it trains the K candidates in
lockstep on shared minibatches (teacher logits once per batch) and reports
candidates per hour (a search-time run: 10 epochs plus a validation pass
per epoch, with and without compilation), the number of XLA compiles and
their seconds, and the achieved FLOP/s against this machine's fp32 matmul
rate measured in the same run. Paths: 'materialised' (each child at its
real size, one program per distinct Arch), 'masked' (every child as the
teacher's network under masks, one program per teacher, candidates in
sequence) and 'masked_vmap' (the same, vmapped: one program per (teacher,
K)). 'next' counts the compiles a following search step (K new children)
triggers.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from typing import Callable, Sequence

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax.arch import Arch, get_teacher, sample, shrink, width_groups
from esnac_jax.bench.common import matmul_rate, write_json
from esnac_jax.models import inherit, init_variables
from esnac_jax.models.masked import (candidate_masks, masked_variables,
                                     stack_masks)
from esnac_jax.train import LossConfig, OptimConfig
from esnac_jax.train.optim import make_optimizer
from esnac_jax.train.masked import masked_train_step_fn
from esnac_jax.train.steps import create_state, logits_fn, train_step_fn

FLAGS = flags.FLAGS


def compile_in_threads(fns: Sequence[Callable],
                       args: Sequence[tuple],
                       workers: int | None = None) -> list[Callable]:
  """Each jitted fns[i] compiled for args[i] (arrays or ShapeDtypeStructs),
  `workers` at a time in threads (XLA compiles outside the GIL): the
  `materialised_ahead` path. On a 2-core CPU it saves nothing, since one
  XLA:CPU compile already uses both cores; on a GPU host compiles leave
  cores idle. Returns the executables, called like the functions (same
  inputs, donation kept)."""
  workers = workers or min(len(fns), os.cpu_count() or 1)
  if workers <= 1 or len(fns) <= 1:
    return [f.lower(*a).compile() for f, a in zip(fns, args)]
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    return list(
        pool.map(lambda fa: fa[0].lower(*fa[1]).compile(), zip(fns, args)))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so the
  benchmarks can be imported together)."""
  flags.DEFINE_list('setups', ['digits', 'resnet18_cifar'],
                    'digits, resnet18_cifar and/or resnet34_digits.')
  flags.DEFINE_list('ks', ['1', '4', '8'], 'Candidates per step.')
  flags.DEFINE_list(
      'paths', ['materialised', 'masked', 'masked_vmap'],
      'materialised (one program per child), materialised_ahead (the '
      'same, compiled together in threads first), masked (one '
      'program, candidates in sequence), masked_vmap (one '
      'program per K, candidates vmapped).')
  flags.DEFINE_integer('steps', 5, 'Timed steady training steps.')
  flags.DEFINE_integer('batch', 0, 'Batch size (0: setup default).')
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                    'Activation dtype (bfloat16 for GPU/TPU).')
  flags.DEFINE_string('out', 'bench_results/evaluate.json', 'JSON path.')


# name: (teacher, classes, channels, width, size, batch, train examples)
SETUPS = {
    'digits': ('resnet18', 10, 1, 0.25, 8, 64, 1078),
    'resnet18_cifar': ('resnet18', 100, 3, 1.0, 32, 128, 45_000),
    # bench.compare's ResNet-34 (1,502 possible skips: stacked ones).
    'resnet34_digits': ('resnet34', 10, 1, 0.125, 8, 128, 1078),
}
EPOCHS = 10


class CompileCounter:
  """Counts XLA backend compiles and their seconds while active."""

  def __init__(self):
    self.count, self.seconds, self.active = 0, 0.0, False
    jax.monitoring.register_event_duration_secs_listener(self._on)

  def _on(self, event, duration, **kwargs):
    if self.active and event.endswith('backend_compile_duration'):
      self.count += 1
      self.seconds += duration

  def start(self):
    self.count, self.seconds, self.active = 0, 0.0, True

  def stop(self):
    self.active = False
    return self.count, self.seconds


def _materialised(teacher, tvars, children, tx, loss, dtype, batch=None):
  """(init, step) for the real-size path: one program per child; with
  `batch` (x, y, teacher logits) the programs compile together first, as
  train_many does."""
  fns = [train_step_fn(c, tx, loss, dtype) for c in children]
  states = [create_state(inherit(teacher, c, tvars), tx) for c in children]
  if batch is not None:
    fns = compile_in_threads(fns, [(s,) + batch for s in states])

  def step(states, x, y, tl):
    return [f(s, x, y, tl)[0] for f, s in zip(fns, states)]

  return states, step


def _masked(teacher, tvars, children, tx, loss, vmap, dtype):
  """(init, step) for the masked path: one program per teacher (and K)."""
  fn = masked_train_step_fn(teacher, tx, loss, dtype, vmap)
  start = create_state(masked_variables(tvars), tx)
  masks = [candidate_masks(teacher, c) for c in children]
  if vmap:
    k = len(children)
    stacked = stack_masks(masks)
    states = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), start)
    return states, lambda s, x, y, tl: fn(s, stacked, x, y, tl)[0]
  states = [jax.tree_util.tree_map(jnp.array, start) for _ in children]
  return states, lambda ss, x, y, tl: [
      fn(s, m, x, y, tl)[0] for s, m in zip(ss, masks)
  ]


def _setup_path(path, teacher, tvars, children, tx, loss, dtype, batch):
  if path in ('materialised', 'materialised_ahead'):
    return _materialised(teacher, tvars, children, tx, loss, dtype,
                         batch if path == 'materialised_ahead' else None)
  return _masked(teacher, tvars, children, tx, loss, path == 'masked_vmap',
                 dtype)


def run_setup(name: str,
              ks: list[int],
              steps: int,
              batch: int,
              counter: CompileCounter,
              paths: list[str],
              seed: int = 0,
              dtype: str = 'float32') -> list[dict]:
  tname, classes, ch, width, size, default_batch, n_train = SETUPS[name]
  batch = batch or default_batch
  teacher = get_teacher(tname, classes, ch, width, size)
  tvars = init_variables(teacher, jax.random.key(seed))
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(batch, size, size, ch)), jnp.float32)
  y = jnp.asarray(rng.integers(0, classes, batch), jnp.int32)
  jdtype = jnp.bfloat16 if dtype == 'bfloat16' else jnp.float32
  t_logits = logits_fn(teacher, jdtype)
  jax.block_until_ready(t_logits(tvars, x))
  tx = make_optimizer(OptimConfig('adam', 1e-3), n_train // batch, EPOCHS)
  loss = LossConfig('mse')
  steps_per_epoch = n_train // batch
  rows = []
  for path in paths:
    for k in ks:
      children = [sample(teacher, rng) for _ in range(k)]
      counter.start()
      t = time.perf_counter()
      states, step = _setup_path(path, teacher, tvars, children, tx, loss,
                                 jdtype, (x, y, t_logits(tvars, x)))
      states = step(states, x, y, t_logits(tvars, x))
      jax.block_until_ready(states)
      first = time.perf_counter() - t
      compiles, compile_s = counter.stop()
      t = time.perf_counter()
      for _ in range(steps):
        states = step(states, x, y, t_logits(tvars, x))
      jax.block_until_ready(states)
      per_step = (time.perf_counter() - t) / steps
      # A later search step: K new children. How many new compiles?
      again = [sample(teacher, rng) for _ in range(k)]
      counter.start()
      states2, step2 = _setup_path(path, teacher, tvars, again, tx, loss,
                                   jdtype, (x, y, t_logits(tvars, x)))
      jax.block_until_ready(step2(states2, x, y, t_logits(tvars, x)))
      new_compiles, _ = counter.stop()
      del states, states2
      # Executed work: a train step ~ 3x forward FLOPs per example (the
      # masked path runs the whole teacher per candidate); teacher once.
      run_flops = (teacher.flops * k if path.startswith('masked') else sum(
          c.flops for c in children))
      flops = batch * (3 * run_flops + teacher.flops)
      run_s = EPOCHS * steps_per_epoch * per_step * 1.1  # + ~10% validation
      rows.append({
          'setup': name,
          'path': path,
          'k': k,
          'batch': batch,
          'dtype': dtype,
          'step_s': per_step,
          'first_step_s': first,
          'compiles': compiles,
          'compile_s': compile_s,
          'compiles_next_step': new_compiles,
          'flops_per_step': flops,
          'achieved_flops_per_s': flops / per_step,
          'candidates_per_hour': 3600 * k / run_s,
          'candidates_per_hour_with_compile': 3600 * k / (run_s + first),
          'mean_child_params': float(np.mean([c.num_params for c in children])),
      })
      print(
          f'  {path} K={k}: {per_step:.3f} s/step, {compiles} compiles '
          f'({compile_s:.1f} s), next step {new_compiles}',
          flush=True)
  return rows


def bucketed(child: Arch, teacher: Arch, bucket: int, mode: str) -> Arch:
  """`child` with every width group rounded up to a multiple of `bucket`
  (the third way: extra channels would be masked)."""
  groups = width_groups(child, teacher, mode)
  new = []
  for g in groups:
    w = min(-(-g.width // bucket) * bucket, g.teacher_width)
    w = -(-w // g.divisor) * g.divisor
    if w != g.width and w <= g.teacher_width:
      new.append((g, w))
  return shrink(child, teacher, new) if new else child


def sharing(name: str, n: int, buckets=(8, 16), seed: int = 0) -> dict:
  """Distinct compiled programs n random children need on each path."""
  tname, classes, ch, width, size, _, _ = SETUPS[name]
  teacher = get_teacher(tname, classes, ch, width, size)
  rng = np.random.default_rng(seed)
  kids = [sample(teacher, rng) for _ in range(n)]
  out = {
      'setup': name,
      'children': n,
      'materialised': len(set(kids)),
      'masked': 1
  }
  for b in buckets:
    out[f'bucketed_{b}'] = len(
        {bucketed(c, teacher, b, 'by_width') for c in kids})
  # Widths aside, children still differ in removed layers and skips.
  out['distinct_structures'] = len({
      (tuple(l.kind for l in c.layers), c.edges) for c in kids
  })
  return out


def main(argv):
  del argv
  counter = CompileCounter()
  peak = matmul_rate()
  rows = []
  for setup in FLAGS.setups:
    if setup not in SETUPS:
      raise app.UsageError(f'unknown setup {setup!r}; known: '
                           f'{", ".join(SETUPS)}')
    print(f'running {setup} ...', flush=True)
    rows += run_setup(setup, [int(k) for k in FLAGS.ks],
                      FLAGS.steps,
                      FLAGS.batch,
                      counter,
                      FLAGS.paths,
                      dtype=FLAGS.dtype)
  print(f'\nactivations {FLAGS.dtype}; fp32 matmul rate '
        f'{peak / 1e9:.1f} GFLOP/s on '
        f'{jax.devices()[0].device_kind}')
  print(f"{'setup':16s} {'path':13s} {'K':>2s} {'batch':>5s} {'step s':>8s} "
        f"{'compiles':>8s} {'compile s':>9s} {'next':>4s} {'GFLOP/s':>8s} "
        f"{'of peak':>7s} {'cand/h':>8s} {'cand/h+c':>8s}")
  for r in rows:
    r['fraction_of_matmul_rate'] = r['achieved_flops_per_s'] / peak
    print(f"{r['setup']:16s} {r['path']:13s} {r['k']:2d} {r['batch']:5d} "
          f"{r['step_s']:8.3f} {r['compiles']:8d} {r['compile_s']:9.1f} "
          f"{r['compiles_next_step']:4d} "
          f"{r['achieved_flops_per_s'] / 1e9:8.1f} "
          f"{r['fraction_of_matmul_rate']:7.1%} "
          f"{r['candidates_per_hour']:8.1f} "
          f"{r['candidates_per_hour_with_compile']:8.1f}")
  shares = [sharing(setup, 200) for setup in FLAGS.setups]
  print('\nprograms needed by 200 random children (one per distinct value):')
  for sh in shares:
    print(f"  {sh['setup']}: materialised {sh['materialised']}, widths "
          f"bucketed to 8: {sh['bucketed_8']}, to 16: {sh['bucketed_16']} "
          f"({sh['distinct_structures']} distinct layer/skip structures), "
          f"masked {sh['masked']}")
  out = {
      'machine': {
          'device': jax.devices()[0].device_kind,
          'matmul_flops_per_s': peak
      },
      'epochs': EPOCHS,
      'rows': rows,
      'sharing': shares
  }
  if FLAGS.out:
    write_json(FLAGS.out, out)


if __name__ == '__main__':
  define_flags()
  app.run(main)
