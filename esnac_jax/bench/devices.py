"""Benchmark: candidates per hour with the candidate axis over 1..N devices.

  python -m esnac_jax.bench.devices                    # CPU: 1, 2, 4, 8
                                                       # simulated devices
  python -m esnac_jax.bench.devices --mode=real        # a GPU/TPU host's
                                                       # own devices

Each device count scores the same K children of a randomly initialised
teacher over R rounds with the search's own scorer (train.masked's
vmapped distillation: the candidate axis sharded over a device mesh, K
padded to a multiple of the device count). The first round includes the
compile; the steady rate comes from the rest. It also checks that every
device count gives the one-device validation accuracies. Simulated CPU
devices share this machine's cores, so on a CPU the figures show the
sharding's overhead and its correctness, not a speed-up. Each simulated
count runs in a subprocess (XLA_FLAGS must be set before JAX starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags
import numpy as np

FLAGS = flags.FLAGS
MARK = 'DEVICES_ROW '


def define_flags() -> None:
  flags.DEFINE_enum(
      'mode', 'simulated', ['simulated', 'real'],
      'simulated: N CPU devices per subprocess; real: this '
      "host's devices, in process.")
  flags.DEFINE_list('devices', ['1', '2', '4', '8'], 'Device counts.')
  flags.DEFINE_enum(
      'setup', 'digits', ['digits', 'cifar_shaped'],
      'digits: the real 8x8 digits, ResNet-18 at width 0.125; '
      'cifar_shaped: random 32x32x3 images, 100 classes, '
      'ResNet-18 at full width.')
  flags.DEFINE_integer('k', 8, 'Candidates per round.')
  flags.DEFINE_integer('rounds', 3, 'Rounds (the first compiles).')
  flags.DEFINE_integer('epochs', 1, 'Distillation epochs per candidate.')
  flags.DEFINE_integer('batch', 128, 'Batch size.')
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                    'Activation dtype.')
  flags.DEFINE_integer(
      'worker', 0, 'Internal: measure with this many '
      'devices and print one row.')
  flags.DEFINE_string('out', 'bench_results/devices.json', 'JSON path.')


def _dataset(setup: str):
  from esnac_jax.data import Dataset, Split, load_digits
  if setup == 'digits':
    return load_digits()
  rng = np.random.default_rng(0)

  def split(n):
    return Split(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 rng.integers(0, 100, n).astype(np.int32))

  return Dataset('cifar_shaped', split(2560), split(512), split(128),
                 np.full(3, 127.5, np.float32), np.full(3, 64.0, np.float32),
                 100)


def measure(n: int, setup: str, k: int, rounds: int, epochs: int, batch: int,
            dtype: str) -> dict:
  """Scores k children per round on the first n local devices."""
  import jax
  from esnac_jax.arch import get_teacher, sample
  from esnac_jax.models import init_variables
  from esnac_jax.train import LossConfig, OptimConfig, TrainConfig
  from esnac_jax.train.masked import candidate_mesh, distill_masked

  if n > jax.local_device_count():
    raise app.UsageError(f'{n} devices asked for, {jax.local_device_count()}'
                         ' present')
  ds = _dataset(setup)
  width, size, ch = ((0.125, 8, 1) if setup == 'digits' else (1.0, 32, 3))
  teacher = get_teacher('resnet18', ds.num_classes, ch, width, size)
  tvars = init_variables(teacher, jax.random.key(0))
  cfg = TrainConfig(epochs,
                    batch,
                    OptimConfig('adam', 3e-3),
                    LossConfig('mse'),
                    dtype=dtype)
  mesh = candidate_mesh(jax.local_devices()[:n]) if n > 1 else None
  rng = np.random.default_rng(0)
  seconds, accs = [], []
  for r in range(rounds):
    children = [sample(teacher, rng) for _ in range(k)]
    t = time.perf_counter()
    trained = distill_masked(teacher,
                             tvars,
                             children,
                             ds,
                             cfg,
                             seed=r,
                             vmap=True,
                             mesh=mesh)
    seconds.append(time.perf_counter() - t)
    accs.append([t_.val_acc for t_ in trained])
    print(
        f'  {n} device(s), round {r + 1}/{rounds}: {seconds[-1]:.2f} s '
        f'for {k} candidates',
        flush=True)
  steady = sum(seconds[1:]) / max(len(seconds) - 1, 1)
  return {
      'devices': n,
      'device_kind': jax.devices()[0].device_kind,
      'setup': setup,
      'k': k,
      'epochs': epochs,
      'batch': batch,
      'dtype': dtype,
      'train_examples': len(ds.train),
      'round_s': seconds,
      'first_round_s': seconds[0],
      'steady_round_s': steady,
      'candidates_per_hour': 3600 * k / steady,
      'val_accs': accs
  }


def _simulated(n: int) -> dict:
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      f' --xla_force_host_platform_device_count={n}').strip()
  env['JAX_PLATFORMS'] = 'cpu'
  args = [
      sys.executable, '-m', 'esnac_jax.bench.devices', f'--worker={n}',
      f'--setup={FLAGS.setup}', f'--k={FLAGS.k}', f'--rounds={FLAGS.rounds}',
      f'--epochs={FLAGS.epochs}', f'--batch={FLAGS.batch}',
      f'--dtype={FLAGS.dtype}'
  ]
  proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, text=True)
  rows = [l[len(MARK):] for l in proc.stdout.splitlines() if l.startswith(MARK)]
  for line in proc.stdout.splitlines():
    if not line.startswith(MARK):
      print(line, flush=True)
  if proc.returncode or not rows:
    raise RuntimeError(f'the {n}-device run failed (exit {proc.returncode})')
  return json.loads(rows[-1])


def main(argv):
  del argv
  if FLAGS.k < 1 or FLAGS.rounds < 2:
    raise app.UsageError('--k must be >= 1 and --rounds >= 2 (the first '
                         'round compiles)')
  counts = [int(d) for d in FLAGS.devices]
  if any(c < 1 for c in counts):
    raise app.UsageError(f'device counts must be >= 1, got {counts}')
  if FLAGS.worker:
    row = measure(FLAGS.worker, FLAGS.setup, FLAGS.k, FLAGS.rounds,
                  FLAGS.epochs, FLAGS.batch, FLAGS.dtype)
    print(MARK + json.dumps(row), flush=True)
    return
  rows = []
  for n in counts:
    print(f'running {n} device(s) ({FLAGS.mode}) ...', flush=True)
    rows.append(
        _simulated(n) if FLAGS.mode ==
        'simulated' else measure(n, FLAGS.setup, FLAGS.k, FLAGS.rounds, FLAGS.
                                 epochs, FLAGS.batch, FLAGS.dtype))
  base = np.asarray(rows[0]['val_accs'])
  print(f"\n{'devices':>7s} {'kind':>12s} {'first round s':>13s} "
        f"{'steady round s':>14s} {'cand/h':>8s} {'max |dacc| vs first':>19s}")
  for r in rows:
    r['max_abs_acc_diff_vs_first'] = float(
        np.max(np.abs(np.asarray(r['val_accs']) - base)))
    print(f"{r['devices']:7d} {r['device_kind'][:12]:>12s} "
          f"{r['first_round_s']:13.2f} {r['steady_round_s']:14.2f} "
          f"{r['candidates_per_hour']:8.0f} "
          f"{r['max_abs_acc_diff_vs_first']:19.4f}")
  if FLAGS.out:
    from esnac_jax.bench.common import write_json
    write_json(FLAGS.out, {'mode': FLAGS.mode, 'rows': rows})


if __name__ == '__main__':
  define_flags()
  app.run(main)
