"""Losses for teacher training and distillation (on logits)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

LOSSES = ('ce', 'mse', 'kl')


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """kind: 'ce' labels only; 'mse' the original's MSE between student and
  teacher logits; 'kl' KL(teacher || student) at `temperature` (scaled by
  T^2), plus `label_weight` times cross-entropy when label_weight > 0."""
  kind: str = 'mse'
  temperature: float = 4.0
  label_weight: float = 0.0

  def __post_init__(self):
    if self.kind not in LOSSES:
      raise ValueError(f'unknown loss {self.kind!r}; use one of {LOSSES}')
    if not 0 < self.temperature < math.inf:
      raise ValueError(f'temperature must be a finite number > 0, got '
                       f'{self.temperature}')
    if not 0 <= self.label_weight < math.inf:
      raise ValueError(f'label_weight must be a finite number >= 0, got '
                       f'{self.label_weight}')


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels).mean()


def loss_fn(cfg: LossConfig,
            logits: jax.Array,
            labels: jax.Array,
            teacher_logits: jax.Array | None = None) -> jax.Array:
  logits = logits.astype(jnp.float32)
  if cfg.kind == 'ce':
    return cross_entropy(logits, labels)
  if teacher_logits is None:
    raise ValueError(f'loss {cfg.kind!r} needs teacher logits')
  t = teacher_logits.astype(jnp.float32)
  if cfg.kind == 'mse':
    loss = jnp.mean((logits - t)**2)
  else:
    temp = cfg.temperature
    p_t = jax.nn.softmax(t / temp)
    loss = jnp.mean(
        jnp.sum(
            p_t *
            (jax.nn.log_softmax(t / temp) - jax.nn.log_softmax(logits / temp)),
            -1)) * temp**2
  if cfg.label_weight > 0:
    loss = loss + cfg.label_weight * cross_entropy(logits, labels)
  return loss
