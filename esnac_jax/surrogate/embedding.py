"""Bidirectional LSTM embedding of feature sequences (original: 4 layers,
hidden 64, mean pooling over layers, L2 normalisation).

Input projections of a whole sequence are one matmul; only the recurrent
matmul runs inside `lax.scan`. A mask [batch, length] lets sequences of
different lengths (other teachers) share one model: masked steps keep the
state, are left out of the mean, and the backward pass starts at each
sequence's own last step.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def _uniform(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


def _run(xs: jax.Array, m: jax.Array, w_hh: jax.Array) -> jax.Array:
  """Both directions of one layer in a single scan.

  xs: [2, B, L, 4H] projected inputs, the backward direction already
  time-reversed; m: [2, B, L, 1]; w_hh: [2, H, 4H]. Returns [2, B, L, H] in
  the same (reversed for backward) time order.
  """
  _, b, _, h4 = xs.shape
  h = h4 // 4
  xs_t, m_t = jnp.moveaxis(xs, 2, 0), jnp.moveaxis(m, 2, 0)

  def step(carry, inp):
    hp, cp = carry
    xt, mt = inp
    gates = xt + jnp.einsum('dbh,dhk->dbk', hp, w_hh)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * cp + jax.nn.sigmoid(i) * jnp.tanh(g)
    hn = jax.nn.sigmoid(o) * jnp.tanh(c)
    c = mt * c + (1 - mt) * cp
    hn = mt * hn + (1 - mt) * hp
    return (hn, c), hn

  zeros = jnp.zeros((2, b, h), xs.dtype)
  _, ys = jax.lax.scan(step, (zeros, zeros), (xs_t, m_t))
  return jnp.moveaxis(ys, 0, 2)


class BiLSTMEmbedding(nn.Module):
  """[B, L, F] features + [B, L] mask -> [B, 2 * hidden] unit vectors.

  Parameters follow PyTorch's nn.LSTM: U(+-1/sqrt(hidden)) weights, separate
  input and recurrent biases (471,040 parameters at F=272, 64, 4 layers).
  """
  hidden: int = 64
  num_layers: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    init = _uniform(1.0 / math.sqrt(self.hidden))
    m = mask.astype(x.dtype)[..., None]
    h = x
    m2 = jnp.stack([m, m[:, ::-1]])
    for layer in range(self.num_layers):
      params = []
      for d in ('fwd', 'bwd'):
        p = f'l{layer}_{d}_'
        dim = h.shape[-1]
        params.append((
            self.param(p + 'w_ih', init, (dim, 4 * self.hidden), x.dtype),
            self.param(p + 'w_hh', init, (self.hidden, 4 * self.hidden),
                       x.dtype),
            self.param(p + 'b_ih', init, (4 * self.hidden,), x.dtype),
            self.param(p + 'b_hh', init, (4 * self.hidden,), x.dtype)))
      xs = jnp.stack([h @ w_ih + (b_ih + b_hh)
                      for w_ih, _, b_ih, b_hh in params])
      xs = xs.at[1].set(xs[1, :, ::-1])
      ys = _run(xs, m2, jnp.stack([q[1] for q in params]))
      h = jnp.concatenate([ys[0], ys[1, :, ::-1]], axis=-1)
    pooled = (h * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
    norm = jnp.sqrt(jnp.sum(pooled * pooled, -1, keepdims=True) + 1e-12)
    return pooled / norm
