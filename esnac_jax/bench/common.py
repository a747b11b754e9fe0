"""Helpers shared by the benchmarks."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp


def best_time(fn, *args, reps: int = 5) -> float:
  """Fastest of `reps` timed calls of jitted `fn(*args)`, after a warm-up."""
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  best = float('inf')
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def matmul_rate(n: int = 2048, reps: int = 5) -> float:
  """Best observed fp32 matmul FLOP/s of this machine (jitted n x n)."""
  a = jnp.ones((n, n), jnp.float32)
  return 2.0 * n**3 / best_time(jnp.matmul, a, a, reps=reps)


def write_json(path: str, obj: dict) -> None:
  """Writes benchmark figures (the job's JSON writer) and says where."""
  from esnac_jax.job.report import write_json as write
  write(path, obj)
  print(f'wrote {path}')


def define_search_flags(workdir: str, workdir_help: str,
                        milestones: list[str]) -> None:
  """--config, --workdir and --milestones of the search benchmarks
  (bench.compare, bench.transfer)."""
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config',
                                  None, 'Config file, e.g. '
                                  'configs/digits.py.',
                                  lock_config=True)
  flags.DEFINE_string('workdir', workdir, workdir_help)
  flags.DEFINE_list(
      'milestones', milestones, 'Evaluation counts the table '
      'reports the best reward at.')


def run_search_cli(
    argv: list[str], run: Callable[[Any, list[int], Callable[[str], None]],
                                   None]) -> None:
  """The main of a search benchmark: checks the command line, calls
  run(flags, milestones, log), and turns a bad input (ValueError, OSError)
  into one `error:` line and exit status 2."""
  import sys
  from absl import flags, logging
  logging.set_verbosity(logging.WARNING)  # orbax's info lines drown ours
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  f = flags.FLAGS
  if f.config is None:
    raise SystemExit('error: --config is required, e.g. '
                     '--config=configs/digits.py')
  try:
    milestones = [int(x) for x in f.milestones] if 'milestones' in f else []
    run(f, milestones, lambda s: print(s, flush=True))
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    raise SystemExit(2)
