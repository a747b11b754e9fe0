"""Jitted train and eval steps for one Arch (the materialised path).

Each distinct (Arch, optimiser, loss) gets one compiled program, cached, so
the K candidates of a search step and repeated evaluations reuse programs.
The cache is small on purpose: a search never trains an Arch twice, and
every XLA:CPU executable holds a few hundred memory maps, so keeping them all
ran a long run (~100 ResNet-34 children) into Linux's vm.max_map_count
(65,530) and LLVM failed with "Cannot allocate memory". JAX's own caches
keep part of a dropped program's maps, so `release_programs` also clears
them when a process nears the limit.
"""

from __future__ import annotations

import functools
import gc
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from esnac_jax.arch import Arch
from esnac_jax.models.forward import forward
from esnac_jax.train.losses import LossConfig, loss_fn

PROGRAMS_KEPT = 16  # per function below


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self) -> dict:
    return {'params': self.params, 'batch_stats': self.batch_stats}


def create_state(variables: dict,
                 tx: optax.GradientTransformation) -> TrainState:
  params = variables['params']
  return TrainState(jnp.zeros((), jnp.int32), params,
                    variables.get('batch_stats', {}), tx.init(params))


def distill_update(apply_fn, tx: optax.GradientTransformation, loss: LossConfig,
                   state: TrainState, x, y, t_logits,
                   *extra) -> tuple[TrainState, jax.Array]:
  """One optimiser step on the distillation loss; `apply_fn` is called as
  a Flax module's apply: apply_fn(variables, x, *extra, train=True,
  mutable=['batch_stats']) -> (logits, {'batch_stats': ...})."""

  def objective(params):
    logits, upd = apply_fn({
        'params': params,
        'batch_stats': state.batch_stats
    },
                           x,
                           *extra,
                           train=True,
                           mutable=['batch_stats'])
    return loss_fn(loss, logits, y, t_logits), upd['batch_stats']

  (value, stats), grads = jax.value_and_grad(objective,
                                             has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return TrainState(state.step + 1, params, stats, opt_state), value


@functools.lru_cache(maxsize=PROGRAMS_KEPT)
def train_step_fn(arch: Arch,
                  tx: optax.GradientTransformation,
                  loss: LossConfig,
                  dtype: Any = jnp.float32):
  """(state, x, y, teacher_logits) -> (state, loss), jitted, for `arch`."""

  def apply(variables, x, train, mutable):
    del mutable  # forward returns the batch statistics either way
    logits, stats = forward(arch, variables, x, train, dtype)
    return logits, {'batch_stats': stats}

  def step(state: TrainState, x, y, t_logits):
    return distill_update(apply, tx, loss, state, x, y, t_logits)

  return jax.jit(step, donate_argnums=0)


@functools.lru_cache(maxsize=PROGRAMS_KEPT)
def logits_fn(arch: Arch, dtype: Any = jnp.float32):
  """(variables, x) -> logits in inference mode, jitted, for `arch`."""
  return jax.jit(lambda v, x: forward(arch, v, x, False, dtype)[0])


@functools.lru_cache(maxsize=PROGRAMS_KEPT)
def correct_fn(arch: Arch, dtype: Any = jnp.float32):

  def count(v, x, y, valid):
    pred = jnp.argmax(forward(arch, v, x, False, dtype)[0], -1)
    return jnp.sum((pred == y) & valid)

  return jax.jit(count)


def accuracy(arch: Arch, variables: dict, batches, dtype=jnp.float32) -> float:
  """Top-1 accuracy over (x, y, valid) batches."""
  f = correct_fn(arch, dtype)
  correct, total = 0, 0
  for x, y, valid in batches:
    correct += int(f(variables, x, y, valid))
    total += int(valid.sum())
  return correct / max(total, 1)


def map_count_fraction() -> float:
  """Share of vm.max_map_count this process uses (0 where not Linux)."""
  try:
    with open('/proc/sys/vm/max_map_count') as f:
      limit = int(f.read())
    with open('/proc/self/maps') as f:
      used = sum(1 for _ in f)
  except (OSError, ValueError):
    return 0.0
  return used / max(limit, 1)


def release_programs(threshold: float = 0.5,
                     log: Callable[[str], None] | None = None) -> bool:
  """Drops every cached program (ours and JAX's) once the process uses more
  than `threshold` of its memory-map limit; they recompile on next use.
  Returns whether it did."""
  fraction = map_count_fraction()
  if fraction <= threshold:
    return False
  for fn in (train_step_fn, logits_fn, correct_fn):
    fn.cache_clear()
  jax.clear_caches()
  gc.collect()
  if log:
    log(f'released compiled programs: the process used {fraction:.0%} of '
        f'vm.max_map_count; now {map_count_fraction():.0%}')
  return True
