"""Benchmark: one BO step of the learnable kernel (fit K kernels, score M).

  python -m esnac_jax.bench.surrogate                  # ResNet-34, N=160, K=8, M=1000
  python -m esnac_jax.bench.surrogate --quick          # tiny sizes, seconds

Rows (--variants):
  default       the search's default surrogate (configs/common.py): one
                shared BiLSTM of half the original's size (32 x 2) with K GP
                heads, normalised features, marginal likelihood
  faithful      the original's kernel, batched: K independent 64 x 4 LSTMs
                on compact Bernoulli(0.5) subsets, raw 272-d features, LOO
  original_way  the faithful arithmetic one candidate at a time (batch-1
                embedding calls, explicit inverses, per-point LOO), timed on
                a slice of the same work and scaled up
  independent   as faithful with the marginal-likelihood objective
  masked        independent, every kernel embedding all padded points
  shared        one 64 x 4 LSTM with K GP heads
  small         K independent 32 x 2 LSTMs
  warm          steps the stopping rule needs, warm versus cold start

With --lstm=custom,flax each LSTM row runs twice, side by side: the
hand-written BiLSTM (the default) and flax.linen.RNN over
OptimizedLSTMCell (rows named e.g. `faithful[flax]`).

For each row it reports compile time, steady time, the floating-point work
of the step (LSTM forward/backward while fitting, forward while scoring,
Cholesky factorisations) and the achieved rate against this machine's fp32
matmul rate measured in the same run (a 2048 square matmul), and against
the rate of the step's own largest matmul shapes (`projection_rate`). Fits
run a fixed number of optimiser steps (the original averaged about 15) so
every row does comparable work.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax import surrogate as S
from esnac_jax.arch import batch_features, compression_ratio, get_teacher, sample
from esnac_jax.bench.common import best_time, matmul_rate, write_json
from esnac_jax.surrogate import gp

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so the
  benchmarks can be imported together)."""
  flags.DEFINE_string('teacher', 'resnet34', 'Teacher for sequences.')
  flags.DEFINE_integer('history', 160, 'Evaluated architectures.')
  flags.DEFINE_integer('kernels', 8, 'K kernels.')
  flags.DEFINE_integer('candidates', 1000, 'M candidates scored.')
  flags.DEFINE_integer('fit_steps', 15, 'Optimiser steps per fit.')
  flags.DEFINE_integer('repeats', 2, 'Timed repeats per variant.')
  flags.DEFINE_list('variants', [
      'default', 'faithful', 'original_way', 'independent', 'masked', 'shared',
      'small', 'warm'
  ], 'Which rows to run.')
  flags.DEFINE_integer(
      'hidden', 64, "The original's LSTM hidden size (the "
      'default and small rows use half).')
  flags.DEFINE_integer(
      'layers', 4, "The original's LSTM layers (the default "
      'and small rows use half).')
  flags.DEFINE_list(
      'lstm', ['custom'], 'LSTM implementations to run each '
      'row with (custom, flax).')
  flags.DEFINE_bool('quick', False, 'Tiny sizes (for tests).')
  flags.DEFINE_string('out', 'bench_results/surrogate.json',
                      'Where to write the JSON figures.')


def lstm_flops(length: int, f: int, hidden: int, layers: int) -> float:
  """Forward FLOPs of the BiLSTM for one sequence (matmuls and gates)."""
  total, dim = 0.0, f
  for _ in range(layers):
    per_dir = length * (2 * dim * 4 * hidden + 2 * hidden * 4 * hidden +
                        12 * hidden)
    total += 2 * per_dir
    dim = 2 * hidden
  return total


def projection_rate(k: int,
                    rows: int,
                    f: int,
                    hidden: int,
                    layers: int,
                    reps: int = 3) -> float:
  """fp32 FLOP/s of the step's own largest matmuls on this machine.

  Those are each layer's input projection for K kernels at once,
  [K, rows, F] x [K, F, 8H] (F = features in the first layer, 2H after;
  rows = sequence length x subset size), most of the step's FLOPs. A square
  2048 matmul reaches a rate these shapes may not (XLA picks the kernels):
  this rate says how much of the gap to it is the shapes, not the loop.
  """
  dims = [f] + [2 * hidden] * (layers - 1)
  key = jax.random.key(0)
  total_flops = total_s = 0.0
  for dim in sorted(set(dims)):
    x = jax.random.normal(key, (k, rows, dim), jnp.float32)
    w = jax.random.normal(key, (k, dim, 8 * hidden), jnp.float32)
    count = dims.count(dim)
    total_flops += count * 2.0 * k * rows * dim * 8 * hidden
    total_s += count * best_time(jnp.matmul, x, w, reps=reps)
  return total_flops / total_s


def chol_flops(n: int) -> float:
  return n**3 / 3.0


@dataclasses.dataclass
class Row:
  name: str
  compile_s: float
  steady_s: float
  flops: float
  note: str = ''


def _time(fn, repeats: int) -> tuple[float, float]:
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  steady = statistics.median(times)
  return max(first - steady, 0.0), steady


def make_data(teacher_name: str,
              n: int,
              m: int,
              kinds: tuple[str, ...] = ('original', 'normalized'),
              seed: int = 0) -> dict[str, tuple]:
  """Histories and candidate pools of real compressed children: one sample
  of architectures and rewards, its features computed once per kind."""
  t = get_teacher(teacher_name)
  rng = np.random.default_rng(seed)
  archs = [sample(t, rng) for _ in range(n + m)]
  c = np.array([compression_ratio(a, t) for a in archs])
  # The teacher is the anchor point with reward 0 (as in the original).
  y = np.concatenate([[0.0], c * (2 - c) * rng.uniform(0.85, 1.0, n + m)])
  hist = slice(0, n + 1)
  pool = slice(n + 1, n + 1 + m)
  out = {}
  for kind in kinds:
    feats = batch_features([t] + archs, t, kind)
    mask = np.ones(feats.shape[:2], bool)
    out[kind] = (feats[hist], mask[hist], y[hist].astype(np.float32),
                 feats[pool], mask[pool])
  return out


def _subsets(rng, k: int, n: int) -> np.ndarray:
  sub = rng.random((k, n)) < 0.5
  sub[:, 0] = True  # every kernel sees the teacher anchor
  return sub


# The search's default surrogate (configs/common.py), relative to the
# original's LSTM size; tests/test_bench_surrogate.py keeps them in step.
DEFAULT_ROW = dict(shared=True,
                   size_divisor=2,
                   features='normalized',
                   objective='mll')

# Rows that time the batched kernel, and so can run with either LSTM.
LSTM_ROWS = ('default', 'faithful', 'independent', 'masked', 'shared', 'small')


def run(teacher: str,
        n: int,
        k: int,
        m: int,
        steps: int,
        repeats: int,
        variants: list[str],
        hidden: int = 64,
        layers: int = 4,
        lstms: tuple[str, ...] = ('custom',)) -> dict:
  for impl in lstms:
    S.SurrogateConfig(lstm_impl=impl)  # an unknown one fails before work
  peak = matmul_rate(512 if n < 50 else 2048)
  data = make_data(teacher, n, m)
  length = data['original'][0].shape[1]
  rng = np.random.default_rng(1)
  sub = _subsets(rng, k, n + 1)
  # At the faithful rows' sizes: K LSTMs of the original size on compact
  # subsets.
  subset_size = S.gather_subsets(*data['original'][:3], sub)[0].shape[1]
  proj = projection_rate(k, length * subset_size, data['original'][0].shape[2],
                         hidden, layers)
  key = jax.random.key(0)
  rows: list[Row] = []

  def cfg_for(name, impl='custom'):
    base = dict(max_steps=steps,
                tol=-1.0,
                min_steps=steps,
                hidden=hidden,
                num_layers=layers,
                lstm_impl=impl)
    if name == 'faithful':
      return S.SurrogateConfig.faithful(**base)
    if name in ('small', 'default'):
      d = DEFAULT_ROW['size_divisor']
      base.update(hidden=max(1, hidden // d), num_layers=max(1, layers // d))
    return S.SurrogateConfig(**base)

  jobs = [(name, impl)
          for name in variants
          for impl in (lstms if name in LSTM_ROWS else ('custom',))]
  for name, impl in jobs:
    if rows:
      _print_row(rows[-1], peak)
    label = name if impl == 'custom' else f'{name}[{impl}]'
    print(f'running {label} ...', flush=True)
    kind = DEFAULT_ROW['features'] if name == 'default' else 'original'
    hx, hm, hy, cx, cm = data[kind]
    f = hx.shape[2]
    if name in ('independent', 'faithful', 'small'):
      cfg = cfg_for(name, impl)
      compact = S.gather_subsets(hx, hm, hy, sub)
      size = compact[0].shape[1]
      p0 = S.init(key, cfg, f, k)

      def step(cfg=cfg,
               compact=compact,
               p0=p0,
               hx=hx,
               hm=hm,
               hy=hy,
               cx=cx,
               cm=cm):
        p, _ = S.fit_many(p0, cfg, *compact, per_kernel=True)
        return S.score(p, cfg, hx, hm, hy, sub, cx, cm)

      f1 = lstm_flops(length, f, cfg.hidden, cfg.num_layers)
      work = (k * steps * (3 * size * f1 + 2 * chol_flops(size)) + k *
              (len(hy) + m) * f1 + k * chol_flops(len(hy)))
      rows.append(
          Row(
              label, *_time(step, repeats), work,
              f'K LSTMs on compact subsets of {size}, '
              f'H={cfg.hidden}x{cfg.num_layers}, {cfg.objective}'))
    elif name == 'masked':
      cfg = cfg_for('independent', impl)
      padded, psub = _padded(hx, hm, hy, sub)
      size = len(psub[0])
      p0 = S.init(key, cfg, f, k)

      def step(cfg=cfg, p0=p0, padded=padded, psub=psub, cx=cx, cm=cm):
        p, _ = S.fit_many(p0, cfg, padded[0], padded[1], padded[2], psub)
        return S.score(p, cfg, padded[0], padded[1], padded[2], psub, cx, cm)

      f1 = lstm_flops(length, f, cfg.hidden, cfg.num_layers)
      work = (k * steps * (3 * size * f1 + 2 * chol_flops(size)) + k *
              (size + m) * f1 + k * chol_flops(size))
      rows.append(
          Row(label, *_time(step, repeats), work,
              f'every kernel embeds all {size} padded points'))
    elif name in ('shared', 'default'):
      cfg = cfg_for(name, impl)
      padded, psub = _padded(hx, hm, hy, sub)
      size = len(psub[0])
      p0 = S.init_shared(key, cfg, f, k)

      def step(cfg=cfg, p0=p0, padded=padded, psub=psub, cx=cx, cm=cm):
        p, _ = S.fit_shared(p0, cfg, padded[0], padded[1], padded[2], psub)
        return S.score(p, cfg, padded[0], padded[1], padded[2], psub, cx, cm)

      f1 = lstm_flops(length, f, cfg.hidden, cfg.num_layers)
      work = (steps * (3 * size * f1 + 2 * k * chol_flops(size)) +
              (size + m) * f1 + k * chol_flops(size))
      rows.append(
          Row(
              label, *_time(step, repeats), work,
              f'one LSTM (H={cfg.hidden}x{cfg.num_layers}), K GP '
              f'heads, {kind} features ({f})'))
    elif name == 'warm':
      rows.append(_warm_row(hx, hm, hy, sub, f, k, key, hidden, layers))
    elif name == 'original_way':
      rows.append(
          _original_way(hx, hm, hy, sub, cx, cm, f, k, m, steps, length, hidden,
                        layers))
    else:
      raise ValueError(f'unknown variant {name!r}')
  if rows:
    _print_row(rows[-1], peak)
  f = data['original'][0].shape[2]
  return {
      'machine': {
          'devices': [str(d) for d in jax.devices()],
          'matmul_flops_per_s': peak,
          'projection_flops_per_s': proj,
          # XLA:CPU's dot library choice moves both the step and
          # the matmul rate (README, "CPU speed").
          'xla_flags': os.environ.get('XLA_FLAGS', '')
      },
      'sizes': {
          'teacher': teacher,
          'layers': int(length),
          'features': int(f),
          'history': n,
          'kernels': k,
          'candidates': m,
          'fit_steps': steps,
          'lstms': list(lstms),
          'default_features': data['normalized'][0].shape[2]
      },
      'rows': [
          dataclasses.asdict(r) | {
              'achieved_flops_per_s':
                  r.flops / r.steady_s if r.steady_s else 0,
              'fraction_of_matmul_rate':
                  (r.flops / r.steady_s / peak if r.steady_s else 0),
              'fraction_of_projection_rate':
                  (r.flops / r.steady_s / proj if r.steady_s else 0)
          } for r in rows
      ],
  }


def _print_row(r: Row, peak: float) -> None:
  rate = r.flops / r.steady_s / peak if r.steady_s else 0
  print(
      f'  {r.name}: compile {r.compile_s:.1f}s, steady {r.steady_s:.2f}s, '
      f'{rate:.1%} of the matmul rate; {r.note}',
      flush=True)


def _padded(hx, hm, hy, sub):
  """The whole history padded to its bucket, and the subsets padded too."""
  size = S.bucket_size(len(hy))
  psub = np.zeros((len(sub), size), bool)
  psub[:, :len(hy)] = sub
  return S.pad_history(hx, hm, hy, size), psub


def _warm_row(hx, hm, hy, sub, f, k, key, hidden, layers) -> Row:
  """Steps the stopping rule needs: cold start vs warm start one step later."""
  cfg = S.SurrogateConfig(hidden=hidden, num_layers=layers)
  n = len(hy)
  prev = sub.copy()
  prev[:, n - 8:] = False  # the history before the last batch of 8
  p0 = S.init(key, cfg, f, k)
  data_prev = S.gather_subsets(hx, hm, hy, prev)
  data = S.gather_subsets(hx,
                          hm,
                          hy,
                          sub,
                          size=data_prev[0].shape[1] if sub.sum(1).max()
                          <= data_prev[0].shape[1] else None)
  p_prev, _ = S.fit_many(p0, cfg, *data_prev, per_kernel=True)
  t = time.perf_counter()
  _, cold = S.fit_many(p0, cfg, *data, per_kernel=True)
  jax.block_until_ready(cold)
  t_cold = time.perf_counter() - t
  t = time.perf_counter()
  _, warm = S.fit_many(p_prev, cfg, *data, per_kernel=True)
  jax.block_until_ready(warm)
  t_warm = time.perf_counter() - t
  return Row(
      'warm', 0.0, t_warm, 0.0,
      f'stopping rule: warm {float(np.mean(warm.steps)):.1f} steps '
      f'({t_warm:.2f}s) vs cold {float(np.mean(cold.steps)):.1f} '
      f'steps ({t_cold:.2f}s)')


def _original_way(hx, hm, hy, sub, cx, cm, f, k, m, steps, length, hidden,
                  layers) -> Row:
  """The original's arithmetic, one candidate at a time, timed on a slice.

  Fit step: embed each point of the kernel's subset with its own batch-1
  forward and backward (vjp), the LOO loss from n explicit inverses of the
  (n-1)-point systems, then Adam. Scoring: a batch-1 embedding and an
  explicit-inverse posterior per candidate.
  """
  cfg = S.SurrogateConfig.faithful(hidden=hidden, num_layers=layers)
  p = jax.tree_util.tree_map(lambda a: a[0], S.init(jax.random.key(0), cfg, f,
                                                    1))
  idx = np.flatnonzero(sub[0])
  xs, ms, ys = hx[idx], hm[idx], jnp.asarray(hy[idx])
  n = len(idx)
  tx = S.kernel.optimizer(cfg)
  opt_state = tx.init(p)

  fwd = jax.jit(lambda p, x, m: jax.vjp(
      lambda p: S.embed(p, cfg, x[None], m[None])[0], p))
  bwd = jax.jit(lambda vjp, g: vjp(g)[0])

  @jax.jit
  def loo_grad(e):

    def loss(e):

      def one(i):
        keep = jnp.arange(n) != i
        order = jnp.argsort(~keep)[:-1]  # the other n - 1 points
        eo = e[order]
        kk = gp.rbf(eo, eo, 0.01, 1.0)
        kinv = jnp.linalg.inv(kk + 0.05 * jnp.eye(n - 1))
        kv = gp.rbf(e[i][None], eo, 0.01, 1.0)[0]
        mu = kv @ kinv @ ys[order]
        var = 1.0 - kv @ kinv @ kv + 0.05
        return -(0.5 * jnp.log(2 * jnp.pi * var) + (ys[i] - mu)**2 / (2 * var))

      return -jnp.mean(jax.vmap(one)(jnp.arange(n)))

    return jax.value_and_grad(loss)(e)

  def fit_step(p, opt_state):
    outs = [fwd(p, xs[i], ms[i]) for i in range(n)]
    e = jnp.stack([o[0] for o in outs])
    _, ge = loo_grad(e)
    grads = None
    for (_, vjp), g in zip(outs, ge):
      gi = bwd(vjp, g)
      grads = gi if grads is None else jax.tree_util.tree_map(
          jnp.add, grads, gi)
    updates, opt_state = tx.update(grads, opt_state, p)
    return jax.block_until_ready(jax.tree_util.tree_map(jnp.add, p,
                                                        updates)), opt_state

  t = time.perf_counter()
  p1, opt_state = fit_step(p, opt_state)  # compiles
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  fit_step(p1, opt_state)
  per_step = time.perf_counter() - t

  e_hist = jnp.stack(
      [S.embed(p, cfg, x[None], mm[None])[0] for x, mm in zip(xs, ms)])
  kinv = jnp.linalg.inv(gp.rbf(e_hist, e_hist, 0.01, 1.0) + 0.05 * jnp.eye(n))
  alpha = kinv @ ys
  embed1 = jax.jit(lambda p, x, m: S.embed(p, cfg, x[None], m[None])[0])

  @jax.jit
  def predict(en):
    kv = gp.rbf(en[None], e_hist, 0.01, 1.0)[0]
    return kv @ alpha, jnp.sqrt(1.0 - kv @ kinv @ kv + 0.05)

  jax.block_until_ready(predict(embed1(p, cx[0], cm[0])))
  slice_m = min(m, 100)
  t = time.perf_counter()
  for i in range(slice_m):
    jax.block_until_ready(predict(embed1(p, cx[i], cm[i])))
  per_candidate = (time.perf_counter() - t) / slice_m
  total = k * steps * per_step + k * m * per_candidate
  f1 = lstm_flops(length, f, cfg.hidden, cfg.num_layers)
  work = k * steps * 3 * n * f1 + k * m * f1
  return Row(
      'original_way', compile_s, total, work,
      f'scaled from 1 kernel x 1 step ({per_step:.2f}s per step at '
      f'n={n}) and {slice_m} candidates ({per_candidate * 1e3:.1f}ms '
      'each)')


def print_table(res: dict) -> None:
  peak = res['machine']['matmul_flops_per_s']
  proj = res['machine']['projection_flops_per_s']
  sz = res['sizes']
  print(f"\nBO step: {sz['teacher']} ({sz['layers']} layers x "
        f"{sz['features']} features), history {sz['history']}, "
        f"K={sz['kernels']}, M={sz['candidates']}, {sz['fit_steps']} fit "
        f'steps; fp32 matmul rate {peak / 1e9:.1f} GFLOP/s (2048 square), '
        f'{proj / 1e9:.1f} GFLOP/s on the input-projection shapes; '
        f"XLA_FLAGS={res['machine'].get('xla_flags', '')!r}")
  orig = {r['name']: r for r in res['rows']}.get('original_way')
  print(f"{'variant':14s} {'compile s':>10s} {'steady s':>10s} "
        f"{'GFLOP':>9s} {'GFLOP/s':>9s} {'of peak':>8s} {'of proj':>8s} "
        f"{'vs orig':>8s}  note")
  for r in res['rows']:
    ratio = (orig['steady_s'] /
             r['steady_s'] if orig and r['steady_s'] else float('nan'))
    print(f"{r['name']:14s} {r['compile_s']:10.2f} {r['steady_s']:10.2f} "
          f"{r['flops'] / 1e9:9.1f} {r['achieved_flops_per_s'] / 1e9:9.1f} "
          f"{r['fraction_of_matmul_rate']:8.1%} "
          f"{r['fraction_of_projection_rate']:8.1%} {ratio:7.1f}x  "
          f"{r['note']}")


def main(argv):
  del argv
  if FLAGS.quick:
    args = ('resnet18', 24, 3, 40, 3)
    net = (8, 1)
  else:
    args = (FLAGS.teacher, FLAGS.history, FLAGS.kernels, FLAGS.candidates,
            FLAGS.fit_steps)
    net = (FLAGS.hidden, FLAGS.layers)
  t = time.perf_counter()
  res = run(*args, FLAGS.repeats, FLAGS.variants, *net, lstms=tuple(FLAGS.lstm))
  res['wall_s'] = time.perf_counter() - t
  print_table(res)
  if FLAGS.out:
    write_json(FLAGS.out, res)


if __name__ == '__main__':
  define_flags()
  app.run(main)
