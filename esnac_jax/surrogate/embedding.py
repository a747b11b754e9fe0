"""Bidirectional LSTM embedding of feature sequences (original: 4 layers,
hidden 64, mean pooling over layers, L2 normalisation).

Time-major throughout ([L, B, ...]: each scan step reads one contiguous
slice). Input projections of a whole sequence are one matmul; only the
recurrent matmul runs inside `lax.scan`, both directions in the same scan.
The recurrence has a hand-written backward pass (`_recurrence`): one small
matmul per step instead of the two autodiff makes, the recurrent weights'
gradient as one matmul over all steps afterwards. A mask [batch, length]
lets sequences of different lengths (other teachers) share one model:
masked steps keep the state, are left out of the mean, and the backward
pass starts at each sequence's own last step.
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


def _scan_forward(xs, m, w_hh):
  """xs [L, 2, B, 4H] projected inputs (the backward direction already
  time-reversed), m [L, 2, B, 1], w_hh [2, H, 4H] -> per step h, c, gate
  activations (i, f, g, o) and tanh(c)."""
  h = xs.shape[-1] // 4

  def step(carry, inp):
    hp, cp = carry
    xt, mt = inp
    pre = xt + jnp.einsum('dbh,dhk->dbk', hp, w_hh)
    i, f, g, o = jnp.split(pre, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jax.nn.sigmoid(o)
    g = jnp.tanh(g)
    c = f * cp + i * g
    tc = jnp.tanh(c)
    keep = mt > 0
    c = jnp.where(keep, c, cp)
    hn = jnp.where(keep, o * tc, hp)
    return (hn, c), (hn, c, jnp.concatenate([i, f, g, o], -1), tc)

  zeros = jnp.zeros(xs.shape[1:-1] + (h,), xs.dtype)
  return jax.lax.scan(step, (zeros, zeros), (xs, m))[1]


@jax.custom_vjp
def _recurrence(xs: jax.Array, m: jax.Array, w_hh: jax.Array) -> jax.Array:
  """Both directions of one layer: [L, 2, B, H] hidden states.

  Reverse-mode differentiable only (custom_vjp): no jvp/jacfwd.
  """
  return _scan_forward(xs, m, w_hh)[0]


def _recurrence_fwd(xs, m, w_hh):
  hs, cs, acts, tcs = _scan_forward(xs, m, w_hh)
  return hs, (hs, cs, acts, tcs, m, w_hh)


def _recurrence_bwd(res, dhs):
  hs, cs, acts, tcs, m, w_hh = res
  zero = jnp.zeros_like(hs[:1])
  h_prev = jnp.concatenate([zero, hs[:-1]])
  c_prev = jnp.concatenate([zero, cs[:-1]])
  w_t = jnp.swapaxes(w_hh, 1, 2)

  def step(carry, inp):
    dh, dc = carry
    dy, act, tc, cp, mt = inp
    dh = dh + dy
    i, f, g, o = jnp.split(act, 4, axis=-1)
    dct = dc + dh * o * (1 - tc * tc)
    keep = mt > 0
    dpre = jnp.where(keep, jnp.concatenate(
        [dct * g * i * (1 - i), dct * cp * f * (1 - f),
         dct * i * (1 - g * g), dh * tc * o * (1 - o)], -1), 0)
    dh_prev = jnp.where(keep, jnp.einsum('dbk,dkh->dbh', dpre, w_t), dh)
    dc_prev = jnp.where(keep, dct * f, dc)
    return (dh_prev, dc_prev), dpre

  _, dpre = jax.lax.scan(step, (zero[0], zero[0]),
                         (dhs, acts, tcs, c_prev, m), reverse=True)
  dw = jnp.einsum('tdbh,tdbk->dhk', h_prev, dpre)
  return dpre, jnp.zeros_like(m), dw


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


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
    h = jnp.swapaxes(x, 0, 1)                                  # [L, B, F]
    m = jnp.swapaxes(mask, 0, 1).astype(x.dtype)[..., None]    # [L, B, 1]
    m2 = jnp.stack([m, m[::-1]], axis=1)                       # [L, 2, B, 1]
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
      fwd, bwd = [h @ w_ih + (b_ih + b_hh) for w_ih, _, b_ih, b_hh in params]
      ys = _recurrence(jnp.stack([fwd, bwd[::-1]], axis=1), m2,
                       jnp.stack([q[1] for q in params]))
      h = jnp.concatenate([ys[:, 0], ys[::-1, 1]], axis=-1)   # [L, B, 2H]
    pooled = (h * m).sum(0) / jnp.maximum(m.sum(0), 1.0)
    norm = jnp.sqrt(jnp.sum(pooled * pooled, -1, keepdims=True) + 1e-12)
    return pooled / norm
