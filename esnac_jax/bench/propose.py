"""Benchmark: drawing candidate pools and whole ESNAC proposals, the array
path (arch.encoding) against the per-Arch path, side by side in one run.

  python -m esnac_jax.bench.propose                 # ResNet-34, 8,000 children
  python -m esnac_jax.bench.propose --quick         # ResNet-18, seconds

Rows:
  pool      drawing and featurising `--children` prior children ('original'
            and 'normalized' features): operators.sample + batch_features
            per Arch (timed on `--arch_children` of them and scaled) against
            Encoder.sample + Encoder.features on all of them;
  propose   one `ask` of the default and the faithful ESNAC searcher after
            `--history` evaluated children (rewards from a fixed function
            of size, no training), split into pool time (drawing and
            featurising) and the rest (fitting and scoring the surrogate),
            with the teacher's encoder and with it switched off.
"""

from __future__ import annotations

import time

from absl import app, flags
import numpy as np

from esnac_jax.arch import SamplerConfig, batch_features, get_teacher, sample
from esnac_jax.arch.encoding import Encoder
from esnac_jax.bench.common import write_json
from esnac_jax.search import ESNACConfig, ESNACSearcher, Result
from esnac_jax.search.reward import reward
from esnac_jax.surrogate.kernel import SurrogateConfig

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('teacher', 'resnet34', 'Zoo teacher.')
  flags.DEFINE_float('width', 1.0, "Teacher width multiplier.")
  flags.DEFINE_integer('children', 8000, 'Children per pool row.')
  flags.DEFINE_integer('arch_children', 500,
                       'Children drawn one Arch at a time (then scaled).')
  flags.DEFINE_integer('history', 32, 'Evaluated children before the ask.')
  flags.DEFINE_integer('kernels', 8, 'K proposals per ask.')
  flags.DEFINE_integer('fit_steps', 15, 'Optimiser steps per surrogate fit.')
  flags.DEFINE_list('presets', ['default', 'faithful'], 'ESNAC presets.')
  flags.DEFINE_bool('quick', False, 'Tiny sizes (seconds).')
  flags.DEFINE_string('out', 'bench_propose.json', 'JSON output.')


def pool_row(teacher, n: int, n_arch: int, seed: int = 0) -> dict:
  """Seconds to draw and featurise n children, per path and feature kind."""
  out = {'children': n}
  rng = np.random.default_rng(seed)
  t = time.perf_counter()
  archs = [sample(teacher, rng) for _ in range(n_arch)]
  draw = (time.perf_counter() - t) * n / n_arch
  enc = Encoder(teacher)
  for kind in ('original', 'normalized'):
    t = time.perf_counter()
    batch_features(archs, teacher, kind)
    feat = (time.perf_counter() - t) * n / n_arch
    (t_draw, t_all), *later = [
        _array_pool_seconds(enc, kind, n, seed + r) for r in range(4)
    ]
    out[kind] = {
        'arch_path_s': draw + feat,
        'arch_draw_s': draw,
        'array_path_s': t_all,
        'array_draw_s': t_draw,
        # Best of three more pools: the first large array of a process can
        # wait on the kernel compacting memory for huge pages.
        'array_path_later_s': min(t for _, t in later),
        'speedup': (draw + feat) / t_all
    }
    print(f'pool {kind:10s} {n} children: per-Arch {draw + feat:8.2f} s '
          f'(draw {draw:.2f})   arrays {t_all:6.3f} s (draw {t_draw:.3f}; '
          f'later pools {out[kind]["array_path_later_s"]:.3f})   '
          f'x{(draw + feat) / t_all:.0f}')
  return out


def _array_pool_seconds(enc: Encoder, kind: str, n: int,
                        seed: int) -> tuple[float, float]:
  """(draw, draw + featurise) seconds of one pool on the array path."""
  t = time.perf_counter()
  pool = enc.sample(np.random.default_rng(seed), n)
  t_draw = time.perf_counter() - t
  enc.features(pool, kind)
  return t_draw, time.perf_counter() - t


def _config(preset: str, fit_steps: int) -> ESNACConfig:
  if preset == 'faithful':
    return ESNACConfig.faithful(surrogate=SurrogateConfig.faithful(
        max_steps=fit_steps, min_steps=fit_steps))
  if preset == 'default':
    return ESNACConfig(surrogate=SurrogateConfig(max_steps=fit_steps,
                                                 min_steps=fit_steps),
                       init_random=0)
  raise ValueError(f'unknown preset {preset!r}')


def propose_row(teacher,
                preset: str,
                history: int,
                kernels: int,
                fit_steps: int,
                arrays: bool,
                seed: int = 0) -> dict:
  """Seconds of one ask after `history` evaluated children, split into
  pool time and the rest (surrogate fit and scoring)."""
  s = ESNACSearcher(teacher,
                    SamplerConfig(),
                    seed,
                    config=_config(preset, fit_steps))
  if not arrays:
    s._encoder = None
  rng = np.random.default_rng(seed + 1)
  archs = s.draw(rng, history)
  results = []
  for a in archs:
    c = 1 - a.num_params / teacher.num_params
    acc = 0.9 - 0.6 * c**4 + 0.02 * np.sin(a.flops)
    results.append(
        Result(acc, reward(acc, 0.9, a.num_params, teacher.num_params)))
  s.tell(archs, results)
  pool_s = [0.0]
  draw = s.candidates

  def timed(*args, **kwargs):
    t = time.perf_counter()
    out = draw(*args, **kwargs)
    feats = out.features(teacher, s.config.features)
    out.features = lambda *_: feats  # the ask reuses what was timed here
    pool_s[0] += time.perf_counter() - t
    return out

  s.candidates = timed
  rows = []
  for step in range(2):  # the first ask compiles the surrogate
    pool_s[0] = 0.0
    t = time.perf_counter()
    s.ask(kernels)
    total = time.perf_counter() - t
    rows.append({
        'step': step,
        'total_s': total,
        'pool_s': pool_s[0],
        'surrogate_s': total - pool_s[0]
    })
  r = rows[-1]
  print(f'propose {preset:8s} arrays={arrays!s:5s}: ask {r["total_s"]:7.2f} s '
        f'= pool {r["pool_s"]:6.2f} + surrogate {r["surrogate_s"]:6.2f} '
        f'(first ask {rows[0]["total_s"]:.2f} s)')
  return {'preset': preset, 'arrays': arrays, 'steps': rows}


def main(argv) -> None:
  del argv
  if FLAGS.quick:
    FLAGS.teacher, FLAGS.children, FLAGS.arch_children = 'resnet18', 1000, 100
    FLAGS.history, FLAGS.kernels, FLAGS.fit_steps = 8, 2, 2
  teacher = get_teacher(FLAGS.teacher, width=FLAGS.width)
  out = {
      'teacher': FLAGS.teacher,
      'width': FLAGS.width,
      'layers': teacher.num_layers,
      'pool': pool_row(teacher, FLAGS.children, FLAGS.arch_children),
      'propose': []
  }
  for preset in FLAGS.presets:
    for arrays in (False, True):
      out['propose'].append(
          propose_row(teacher, preset, FLAGS.history, FLAGS.kernels,
                      FLAGS.fit_steps, arrays))
  write_json(FLAGS.out, out)


if __name__ == '__main__':
  define_flags()
  app.run(main)
