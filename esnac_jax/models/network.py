"""From an `Arch` to a Flax module (NHWC), the real-size "materialised" path.

`make_model(arch)` is a pure function of the architecture value; the module
holds the Arch as a static attribute, so jit caches one program per Arch.
Parameters live under 'layerNNN' names that match the layer indices, which
is what weight inheritance relies on.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from esnac_jax.arch.core import Arch, Layer
from esnac_jax.models.batchnorm import BatchNorm

# PyTorch defaults, so training recipes transfer (BN momentum 0.1 there).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# The original's init_param: kaiming normal (fan_out) for convs,
# N(0, 0.01) for linear weights, zero biases, BN scale 1 and shift 0.
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
linear_init = nn.initializers.normal(0.01)


def layer_name(i: int) -> str:
  return f'layer{i:03d}'


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
  """ShuffleNet's shuffle: view channels as (groups, C/g), transpose."""
  *lead, c = x.shape
  x = x.reshape(*lead, groups, c // groups)
  x = jnp.swapaxes(x, -1, -2)
  return x.reshape(*lead, c)


class ArchNet(nn.Module):
  """Runs an Arch: each layer reads the sum of its in-edges (concat: list)."""
  arch: Arch
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    arch = self.arch
    check_input(arch, x)
    x = x.astype(self.dtype)
    outs: list[jax.Array | None] = [None] * arch.num_layers
    last_use = _last_use(arch)
    for i, layer in enumerate(arch.layers):
      outs[i] = self._apply(i, layer, layer_input(arch, i, outs, x), train)
      for j in last_use[i]:
        outs[j] = None
    return outs[-1]

  def _apply(self, i: int, layer: Layer, h: jax.Array,
             train: bool) -> jax.Array:
    kind, name = layer.kind, layer_name(i)
    if kind in STATELESS:
      return stateless_layer(layer, h)
    if kind == 'conv':
      p = layer.padding
      return nn.Conv(layer.out_channels, (layer.kernel, layer.kernel),
                     strides=(layer.stride, layer.stride),
                     padding=((p, p), (p, p)),
                     feature_group_count=layer.groups,
                     use_bias=layer.bias,
                     kernel_init=conv_init,
                     dtype=self.dtype,
                     param_dtype=jnp.float32,
                     name=name)(h)
    if kind == 'bn':
      return BatchNorm(use_running_average=not train,
                       momentum=BN_MOMENTUM,
                       epsilon=BN_EPSILON,
                       dtype=self.dtype,
                       param_dtype=jnp.float32,
                       name=name)(h)
    if kind == 'linear':
      return nn.Dense(layer.out_channels,
                      use_bias=layer.bias,
                      kernel_init=linear_init,
                      dtype=self.dtype,
                      param_dtype=jnp.float32,
                      name=name)(h)
    raise ValueError(f'layer {i}: unknown kind {kind!r}')


# Layer kinds without variables.
STATELESS = ('identity', 'concat', 'relu', 'flatten', 'shuffle', 'maxpool',
             'avgpool')


def stateless_layer(layer: Layer, h: jax.Array) -> jax.Array:
  """A layer of a STATELESS kind applied to its input."""
  kind = layer.kind
  if kind in ('identity', 'concat'):
    return h
  if kind == 'relu':
    y = nn.relu(h)
    return jnp.minimum(y, layer.clip) if layer.clip else y
  if kind == 'flatten':
    return h.reshape(h.shape[0], -1)
  if kind == 'shuffle':
    return channel_shuffle(h, layer.groups)
  if kind in ('maxpool', 'avgpool'):
    k, s, p = layer.kernel, layer.stride, layer.padding
    pool = nn.max_pool if kind == 'maxpool' else nn.avg_pool
    # avg_pool counts padded zeros, as PyTorch's default does.
    return pool(h, (k, k), (s, s), ((p, p), (p, p)))
  raise ValueError(f'layer kind {kind!r} has variables')


def check_input(arch: Arch, x: jax.Array) -> None:
  if x.shape[1:] != arch.input_shape:
    raise ValueError(f'input of shape {x.shape[1:]} (without batch) does '
                     f'not match the arch input {arch.input_shape}')


def layer_input(arch: Arch, i: int, outs: list, x: jax.Array) -> jax.Array:
  """What layer i reads: the network input for layer 0, its sources
  concatenated on channels for a concat layer, else their sum."""
  srcs = arch.in_edges[i]
  if i == 0:
    return x
  if arch.layers[i].kind == 'concat':
    return jnp.concatenate([outs[j] for j in srcs], axis=-1)
  h = outs[srcs[0]]
  for j in srcs[1:]:
    h = h + outs[j]
  return h


def _last_use(arch: Arch) -> list[list[int]]:
  """For each layer, the sources whose last consumer it is."""
  last = {}
  for a, b in arch.edges:
    last[a] = max(last.get(a, -1), b)
  out: list[list[int]] = [[] for _ in arch.layers]
  for a, b in last.items():
    out[b].append(a)
  return out


def make_model(arch: Arch, dtype: Any = jnp.float32) -> ArchNet:
  """The Flax module for `arch` (a pure function of the value)."""
  if not isinstance(arch, Arch):
    raise TypeError(f'make_model needs an Arch, got {type(arch).__name__}')
  return ArchNet(arch, dtype)


def init_variables(arch: Arch,
                   key: jax.Array,
                   batch: int = 1,
                   dtype: Any = jnp.float32) -> dict:
  """{'params': ..., 'batch_stats': ...} for `arch` (freshly initialised)."""
  model = make_model(arch, dtype)
  x = jnp.zeros((batch,) + arch.input_shape, jnp.float32)
  return jax.jit(model.init)(key, x)


def count_params(params: Any) -> int:
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
