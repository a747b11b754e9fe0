"""Distillation on the masked path: one compiled program per teacher.

Every candidate trains as the teacher's network under its masks (see
models/masked.py), so a search compiles its training step once per
(teacher, K) — vmapped over K candidates — or once per teacher when the K
candidates run one after another through the same program (`vmap=False`,
better on CPUs, where XLA turns a vmapped convolution into a slow grouped
one). The result is the same as the materialised path's: each child's
best-validation-epoch weights, extracted to its real size.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from esnac_jax.arch import Arch
from esnac_jax.data import Dataset, eval_batches
from esnac_jax.data.device_feed import TrainFeed
from esnac_jax.models.masked import (candidate_masks, extract,
                                     make_masked_model, masked_variables,
                                     stack_masks)
from esnac_jax.train.loop import (Stop, TrainConfig, Trained, check_classes,
                                  keep_best_epochs)
from esnac_jax.train.losses import LossConfig
from esnac_jax.train.optim import make_optimizer
from esnac_jax.train.steps import (TrainState, create_state, distill_update,
                                   logits_fn)


@functools.lru_cache(maxsize=32)
def masked_train_step_fn(teacher: Arch,
                         tx: optax.GradientTransformation,
                         loss: LossConfig,
                         dtype: Any = jnp.float32,
                         vmapped: bool = False):
  """(state, masks, x, y, teacher_logits) -> (state, loss), jitted; with
  `vmapped`, state and masks carry a leading candidate axis."""
  model = make_masked_model(teacher, dtype)

  def step(state: TrainState, masks, x, y, t_logits):
    return distill_update(model.apply, tx, loss, state, x, y, t_logits, masks)

  if vmapped:
    step = jax.vmap(step, in_axes=(0, 0, None, None, None))
  return jax.jit(step, donate_argnums=0)


@functools.lru_cache(maxsize=32)
def masked_correct_fn(teacher: Arch,
                      dtype: Any = jnp.float32,
                      vmapped: bool = False):
  """(variables, masks, x, y, valid) -> correct predictions, jitted."""
  model = make_masked_model(teacher, dtype)

  def count(v, masks, x, y, valid):
    pred = jnp.argmax(model.apply(v, x, masks, train=False), -1)
    return jnp.sum((pred == y) & valid)

  if vmapped:
    count = jax.vmap(count, in_axes=(0, 0, None, None, None))
  return jax.jit(count)


def candidate_mesh(devices: list | None = None) -> Mesh:
  """A 2-D mesh ('data', 'candidates'). Given `devices`: all of them on the
  candidate axis. By default every device of every process: the candidate
  axis over each process's local devices and the data axis over the
  processes, so that each process feeds its own shard of every minibatch
  (one process: a data axis of size 1)."""
  if devices is not None:
    return Mesh(np.array(devices).reshape(1, -1), ('data', 'candidates'))
  devs = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  return Mesh(
      np.array(devs).reshape(jax.process_count(), -1), ('data', 'candidates'))


def _as_is(a: np.ndarray) -> np.ndarray:
  """Without a mesh, NumPy batches go into the step as they are."""
  return a


def _global_feeders(mesh: Mesh):
  """Host batches as global arrays on the mesh: training rows split over
  the 'data' axis (each process passes its own rows), evaluation batches
  whole on every device."""
  by_data = NamedSharding(mesh, P('data'))
  replicated = NamedSharding(mesh, P())

  def train(a: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(by_data, a)

  def evaluate(a: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(replicated, a, a.shape)

  return train, evaluate


def host_value(a: jax.Array) -> np.ndarray:
  """A global array as NumPy on this process, from its own shards (the
  arrays read here are replicated over the processes' data axis)."""
  if a.is_fully_addressable:
    return np.asarray(a)
  out = np.empty(a.shape, a.dtype)
  for shard in a.addressable_shards:
    out[shard.index] = np.asarray(shard.data)
  return out


def distill_masked(teacher: Arch,
                   teacher_vars: dict,
                   children: list[Arch],
                   ds: Dataset,
                   cfg: TrainConfig,
                   seed: int,
                   vmap: bool = False,
                   bn_stats: str = 'reset',
                   log: Callable[[str], None] | None = None,
                   label: str = 'distil (masked)',
                   mesh: Mesh | None = None,
                   rank_weights: Sequence[float] | None = None,
                   stop: Stop | None = None) -> list[Trained]:
  """Distils `children` from the teacher on shared minibatches (teacher
  logits once per batch); weight inheritance is 'first'-k, as the masks
  require. Returns each child's best-validation-epoch result.

  With `vmap` and a `mesh` (see candidate_mesh), the candidate axis is
  sharded over the mesh's 'candidates' devices, K padded to a multiple of
  their number with copies of the last candidate (dropped from the
  results). Over a 'data' axis of several processes (jax.distributed),
  each process holds the whole dataset and feeds its cfg.batch_size /
  processes rows of every minibatch (train_batches' `part`), and the step
  trains on the whole minibatch: the same minibatches and results as one
  process.
  """
  check_classes(teacher, ds)
  if mesh is not None and not vmap:
    raise ValueError('a device mesh needs the vmapped masked path')
  real = len(children)
  per = mesh.shape['candidates'] if mesh is not None else 1
  parts = mesh.shape['data'] if mesh is not None else 1
  if real % per:
    children = list(children) + [children[-1]] * (-real % per)
    if rank_weights is not None:
      rank_weights = list(rank_weights) + [rank_weights[-1]] * (-real % per)
  if cfg.batch_size % parts:
    raise ValueError(f'distill.batch_size={cfg.batch_size} must divide '
                     f'over the {parts} processes of the data axis')
  part = (jax.process_index() if parts > 1 else 0, parts)
  k = len(children)
  masks = [candidate_masks(teacher, c) for c in children]
  steps = len(ds.train) // cfg.batch_size
  tx = make_optimizer(cfg.optim, steps, cfg.epochs)
  dtype = cfg.jnp_dtype
  start = create_state(masked_variables(teacher_vars, bn_stats), tx)
  step = masked_train_step_fn(teacher, tx, cfg.loss, dtype, vmap)
  correct = masked_correct_fn(teacher, dtype, vmap)
  t_logits = logits_fn(teacher, dtype)
  feed = feed_eval = _as_is
  if vmap:
    states = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), start)
    masks_in = stack_masks(masks)
    if mesh is not None:
      split = NamedSharding(mesh, P('candidates'))
      states, masks_in = jax.device_put((states, masks_in), split)
      replicated = NamedSharding(mesh, P())
      teacher_vars = jax.device_put(teacher_vars, replicated)
      feed, feed_eval = _global_feeders(mesh)
  else:
    states = [jax.tree_util.tree_map(jnp.array, start) for _ in children]
  batches = TrainFeed(ds, cfg.feed,
                      NamedSharding(mesh, P()) if mesh is not None else None)

  def subset(active: list[int]):
    """(rows, states, masks) of the vmapped candidates in `active`, padded
    with copies of the last to a power of two (early stopping leaves any
    count, and each count is a compile) and to a multiple of the mesh's
    candidate devices."""
    if len(active) == k:
      return None, states, masks_in
    size = min(1 << (len(active) - 1).bit_length(), k)
    size += -size % per
    rows = np.array(active + [active[-1]] * (size - len(active)))
    sub = jax.tree_util.tree_map(lambda a: a[rows], (states, masks_in))
    if mesh is not None:
      sub = jax.device_put(sub, split)
    return rows, sub[0], sub[1]

  def train_epoch(epoch: int, active: list[int]) -> None:
    nonlocal states
    rows, sub, sub_masks = subset(active) if vmap else (None, None, None)
    for x, y in batches(cfg.batch_size, seed, epoch, part=part):
      x, y = x if batches.on_device else feed(x), feed(y)
      tl = t_logits(teacher_vars, x)
      if vmap:
        sub, _ = step(sub, sub_masks, x, y, tl)
      else:
        for i in active:
          states[i] = step(states[i], masks[i], x, y, tl)[0]
    if vmap:
      states = sub if rows is None else jax.tree_util.tree_map(
          lambda a, b: a.at[rows].set(b), states, sub)

  def validate(active: list[int]) -> list[float]:
    counts, total = np.zeros(len(active)), 0
    rows, sub, sub_masks = subset(active) if vmap else (None, None, None)
    for x, y, valid in eval_batches(ds, ds.val, cfg.eval_batch_size):
      total += int(valid.sum())
      if vmap:
        x, y, valid = feed_eval(x), feed_eval(y), feed_eval(valid)
        got = host_value(correct(sub.variables, sub_masks, x, y, valid))
        counts += got[:len(active)]
      else:
        counts += [
            int(correct(states[i].variables, masks[i], x, y, valid))
            for i in active
        ]
    return [float(c / max(total, 1)) for c in counts]

  def weights(improved: list[int]) -> dict[int, Any]:
    if not vmap:
      return {i: jax.device_get(states[i].variables) for i in improved}
    on_host = jax.tree_util.tree_map(host_value, states.variables)
    return {
        i: jax.tree_util.tree_map(lambda a, i=i: np.array(a[i]), on_host)
        for i in improved
    }

  trained = keep_best_epochs(cfg.epochs,
                             k,
                             train_epoch,
                             validate,
                             weights,
                             log,
                             label,
                             halving=cfg.halving,
                             rank_weights=rank_weights,
                             stop=stop if stop is None else
                             (lambda i, e, a: stop(min(i, real - 1), e, a)))
  return [
      dataclasses.replace(t, variables=extract(teacher, c, t.variables))
      for c, t in zip(children, trained)
  ][:real]
