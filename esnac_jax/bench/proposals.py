"""Benchmark: where the surrogate's first proposals fall, against the prior.

  python -m esnac_jax.bench.proposals --config=configs/digits.py \\
      --teachers=resnet18,resnet34,mobilenetv2,esnac_jax.bench.teachers:vgg_chain

For each teacher (the config's dataset, bench.compare's merged config),
the compression (teacher params / child params) of --samples prior draws,
and of the ESNAC searcher's first proposals when the surrogate must
propose from the teacher anchor alone (init_random=0, random_frac=0), over
--seeds seeds of --per_step proposals. No training: it shows what the
first step would spend its evaluations on. Prints a table and writes JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np


def _quantiles(x: np.ndarray) -> dict[str, float]:
  return {
      q: float(np.percentile(x, p))
      for q, p in (('p10', 10), ('median', 50), ('p90', 90))
  }


def first_proposals(config: Any, teachers: Sequence[str], seeds: int,
                    per_step: int, samples: int) -> list[dict[str, Any]]:
  """One row per teacher: quantiles of the prior's and of the surrogate's
  first proposals' compression."""
  import ml_collections
  from esnac_jax.arch import sample
  from esnac_jax.bench import compare as C
  from esnac_jax.job import from_config
  from esnac_jax.search import make_searcher
  rows = []
  for name in teachers:
    c = ml_collections.ConfigDict(config.to_dict())
    c.teacher.name = name
    m = C.merged_config(c)
    teacher = from_config.teacher_arch(m)
    sampler = from_config.sampler_config(m)
    rng = np.random.default_rng(0)
    prior = np.array([
        teacher.num_params / sample(teacher, rng, sampler).num_params
        for _ in range(samples)
    ])
    esnac = dataclasses.replace(from_config.esnac_config(m),
                                init_random=0,
                                random_frac=0.0)
    picks = []
    for seed in range(seeds):
      s = make_searcher('esnac',
                        teacher,
                        sampler,
                        m.seed + seed,
                        from_config.constraints(m),
                        config=esnac)
      picks += [teacher.num_params / a.num_params for a in s.ask(per_step)]
    rows.append({
        'teacher': name,
        'params': teacher.num_params,
        'prior': _quantiles(prior),
        'first_proposals': _quantiles(np.array(picks))
    })
  return rows


def format_rows(rows: list[dict[str, Any]]) -> str:

  def q(d):
    return f'{d["median"]:.1f}x ({d["p10"]:.1f}-{d["p90"]:.1f})'

  lines = [
      'compression, median (10th-90th percentile)',
      f'{"teacher":40s} {"prior draws":24s} first proposals'
  ]
  for r in rows:
    lines.append(f'{r["teacher"]:40s} {q(r["prior"]):24s} '
                 f'{q(r["first_proposals"])}')
  return '\n'.join(lines)


def main(argv) -> None:
  from absl import flags, logging
  from esnac_jax.bench.common import write_json
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  f = flags.FLAGS
  if f.config is None:
    raise SystemExit('error: --config is required')
  try:
    rows = first_proposals(f.config, f.teachers, f.seeds, f.per_step, f.samples)
  except ValueError as e:
    raise SystemExit(f'error: {e}') from None
  print(format_rows(rows))
  write_json(f.out, {
      'rows': rows,
      'seeds': f.seeds,
      'per_step': f.per_step,
      'samples': f.samples
  })


if __name__ == '__main__':
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config',
                                  None, 'Config file, e.g. '
                                  'configs/digits.py.',
                                  lock_config=True)
  flags.DEFINE_list('teachers', ['resnet18'], 'Teacher names (zoo or '
                    'module:function builders).')
  flags.DEFINE_integer('seeds', 3, 'Searcher seeds.')
  flags.DEFINE_integer('per_step', 8, 'Proposals per seed.')
  flags.DEFINE_integer('samples', 400, 'Prior draws per teacher.')
  flags.DEFINE_string('out', 'bench_results/proposals.json', 'JSON output.')
  app.run(main)
