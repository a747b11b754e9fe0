"""Helpers shared by the benchmarks."""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp


def matmul_rate(n: int = 2048, reps: int = 5) -> float:
  """Best observed fp32 matmul FLOP/s of this machine (jitted n x n)."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  best = float('inf')
  for _ in range(reps):
    t = time.perf_counter()
    f(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2.0 * n**3 / best


def write_json(path: str, obj: dict) -> None:
  """Writes benchmark figures and says where."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'w') as f:
    json.dump(obj, f, indent=1)
  print(f'wrote {path}')
