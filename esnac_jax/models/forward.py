"""`ArchNet` as a plain function of (arch, variables, inputs).

The training and evaluation programs of the materialised path call this
instead of the Flax module: the same operations in the same order (equal
results, bit for bit, tests/test_forward.py), traced in half the time,
because it skips Flax's module scopes and the parameter shape check that
traces each layer's initialiser again. A search traces one new program
per student, so on a CPU that is a few seconds of every step. `ArchNet`
stays the definition (initialisation, the masked path, export).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from esnac_jax.arch.core import Arch, Layer
from esnac_jax.models.batchnorm import normalise
from esnac_jax.models.network import (BN_EPSILON, BN_MOMENTUM, STATELESS,
                                      _last_use, check_input, layer_input,
                                      layer_name, stateless_layer)


def forward(arch: Arch,
            variables: dict,
            x: jax.Array,
            train: bool = False,
            dtype: Any = jnp.float32) -> tuple[jax.Array, dict]:
  """(logits, batch_stats): what `make_model(arch, dtype).apply(variables,
  x, train=train, mutable=['batch_stats'])` gives. In training mode the
  batch statistics are the updated running averages; otherwise they are
  returned as given."""
  check_input(arch, x)
  params = variables['params']
  stats = dict(variables.get('batch_stats', {}))
  outs: list[jax.Array | None] = [None] * arch.num_layers
  last_use = _last_use(arch)
  x = x.astype(dtype)
  for i, layer in enumerate(arch.layers):
    h = layer_input(arch, i, outs, x)
    name = layer_name(i)
    outs[i], new = _layer(layer, params.get(name), stats.get(name), h, train,
                          dtype)
    if new is not None:
      stats[name] = new
    for j in last_use[i]:
      outs[j] = None
  return outs[-1], stats


def _layer(layer: Layer, p: dict | None, st: dict | None, h: jax.Array,
           train: bool, dtype: Any) -> tuple[jax.Array, dict | None]:
  kind = layer.kind
  if kind in STATELESS:
    return stateless_layer(layer, h), None
  if kind == 'conv':
    pad, s = layer.padding, layer.stride
    y = jax.lax.conv_general_dilated(h,
                                     p['kernel'].astype(dtype), (s, s),
                                     ((pad, pad), (pad, pad)),
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                     feature_group_count=layer.groups)
    return (y + p['bias'].astype(dtype) if layer.bias else y), None
  if kind == 'linear':
    y = jax.lax.dot_general(h, p['kernel'].astype(dtype),
                            (((h.ndim - 1,), (0,)), ((), ())))
    return (y + p['bias'].astype(dtype) if layer.bias else y), None
  if kind == 'bn':
    h32 = h.astype(jnp.promote_types(h.dtype, jnp.float32))
    if not train:
      mul = jax.lax.rsqrt(st['var'] + BN_EPSILON) * p['scale']
      return ((h32 - st['mean']) * mul + p['bias']).astype(dtype), None
    y, mean, var = normalise(h32, p['scale'].astype(h32.dtype),
                             p['bias'].astype(h32.dtype), BN_EPSILON)
    m = BN_MOMENTUM
    new = {
        'mean': m * st['mean'] + (1 - m) * jax.lax.stop_gradient(mean),
        'var': m * st['var'] + (1 - m) * jax.lax.stop_gradient(var)
    }
    return y.astype(dtype), new
  raise ValueError(f'unknown layer kind {kind!r}')
