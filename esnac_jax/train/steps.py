"""Jitted train and eval steps for one Arch (the materialised path).

Each distinct (Arch, optimiser, loss) gets one compiled program, cached, so
the K candidates of a search step and repeated evaluations reuse programs.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from esnac_jax.arch import Arch
from esnac_jax.models import make_model
from esnac_jax.train.losses import LossConfig, loss_fn


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self) -> dict:
    return {'params': self.params, 'batch_stats': self.batch_stats}


def create_state(variables: dict, tx: optax.GradientTransformation
                 ) -> TrainState:
  params = variables['params']
  return TrainState(jnp.zeros((), jnp.int32), params,
                    variables.get('batch_stats', {}), tx.init(params))


def distill_update(apply_fn, tx: optax.GradientTransformation,
                   loss: LossConfig, state: TrainState, x, y, t_logits,
                   *extra) -> tuple[TrainState, jax.Array]:
  """One optimiser step on the distillation loss; `apply_fn` is a Flax
  module's apply, called as apply_fn(variables, x, *extra, train=True)."""
  def objective(params):
    logits, upd = apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, x, *extra,
        train=True, mutable=['batch_stats'])
    return loss_fn(loss, logits, y, t_logits), upd['batch_stats']

  (value, stats), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return TrainState(state.step + 1, params, stats, opt_state), value


@functools.lru_cache(maxsize=512)
def train_step_fn(arch: Arch, tx: optax.GradientTransformation,
                  loss: LossConfig, dtype: Any = jnp.float32):
  """(state, x, y, teacher_logits) -> (state, loss), jitted, for `arch`."""
  model = make_model(arch, dtype)

  def step(state: TrainState, x, y, t_logits):
    return distill_update(model.apply, tx, loss, state, x, y, t_logits)

  return jax.jit(step, donate_argnums=0)


@functools.lru_cache(maxsize=512)
def logits_fn(arch: Arch, dtype: Any = jnp.float32):
  """(variables, x) -> logits in inference mode, jitted, for `arch`."""
  model = make_model(arch, dtype)
  return jax.jit(lambda v, x: model.apply(v, x, train=False))


@functools.lru_cache(maxsize=512)
def correct_fn(arch: Arch, dtype: Any = jnp.float32):
  model = make_model(arch, dtype)

  def count(v, x, y, valid):
    pred = jnp.argmax(model.apply(v, x, train=False), -1)
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
