"""Bidirectional LSTM embedding of feature sequences (original: 4 layers,
hidden 64, mean pooling over layers, L2 normalisation).

Time-major ([L, B, ...]). A layer's input projection for both directions
is one matmul, [L, B, F] x [F, 8H]; only the recurrent matmul runs inside
the loop. Each loop step t advances the forward direction at time t and
the backward direction at time L-1-t, reading both from that one
projection and writing both into one [L, B, 2H] output, the next layer's
input: no reversed or stacked copies of whole sequences (under vmap over K
kernels those copies were transposes that cost a fifth of a fit step).

The recurrence has a hand-written backward pass (`_recurrence`): one small
matmul per step instead of the two autodiff makes, the recurrent weights'
gradient as one matmul per direction afterwards, and only the gate
activations and cell states kept from the forward pass. A mask [batch,
length] lets sequences of different lengths (other teachers) share one
model: masked steps keep the state and are left out of the mean.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

IMPLS = ('custom', 'flax')


def _uniform(scale: float):

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)

  return init


def _at(a: jax.Array, t: jax.Array) -> jax.Array:
  return lax.dynamic_index_in_dim(a, t, 0, keepdims=False)


def _both(a: jax.Array, t: jax.Array, width: int) -> jax.Array:
  """[2, ...]: the forward half of a's features at time t, the backward
  half at time L-1-t."""
  r = a.shape[0] - 1 - t
  return jnp.stack([_at(a, t)[..., :width], _at(a, r)[..., width:]])


def _forward(x, m, w_hh, residuals: bool = False):
  """x [L, B, 8H] projected inputs (forward gates, then backward gates),
  m [L, B, 1], w_hh [2, H, 4H] -> y [L, B, 2H] and, with residuals, the
  cell states [L, 2, B, H] and gate activations [L, 2, B, 4H] in loop
  order (index t: forward time t, backward time L-1-t)."""
  length, batch, _ = x.shape
  h = w_hh.shape[1]
  mm = jnp.concatenate([m, m], -1)

  def step(t, state):
    hp, cp, y, cs, acts = state
    pre = _both(x, t, 4 * h) + jnp.einsum('dbh,dhk->dbk', hp, w_hh)
    i, f, g, o = jnp.split(pre, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jax.nn.sigmoid(o)
    g = jnp.tanh(g)
    c = f * cp + i * g
    keep = _both(mm, t, 1) > 0
    c = jnp.where(keep, c, cp)
    hn = jnp.where(keep, o * jnp.tanh(c), hp)
    y = lax.dynamic_update_slice(y, hn[0][None], (t, 0, 0))
    y = lax.dynamic_update_slice(y, hn[1][None], (length - 1 - t, 0, h))
    if residuals:
      cs = lax.dynamic_update_index_in_dim(cs, c, t, 0)
      acts = lax.dynamic_update_index_in_dim(acts,
                                             jnp.concatenate([i, f, g, o], -1),
                                             t, 0)
    return hn, c, y, cs, acts

  zero = jnp.zeros((2, batch, h), x.dtype)
  kept = length if residuals else 0
  state = (zero, zero, jnp.zeros(
      (length, batch, 2 * h), x.dtype), jnp.zeros((kept, 2, batch, h), x.dtype),
           jnp.zeros((kept, 2, batch, 4 * h), x.dtype))
  return lax.fori_loop(0, length, step, state, unroll=2)[2:]


@jax.custom_vjp
def _recurrence(x: jax.Array, m: jax.Array, w_hh: jax.Array) -> jax.Array:
  """Both directions of one layer: [L, B, 2H] hidden states in time order.

  Reverse-mode differentiable only (custom_vjp): no jvp/jacfwd.
  """
  return _forward(x, m, w_hh)[0]


def _recurrence_fwd(x, m, w_hh):
  y, cs, acts = _forward(x, m, w_hh, residuals=True)
  return y, (y, cs, acts, m, w_hh)


def _recurrence_bwd(res, dy):
  y, cs, acts, m, w_hh = res
  length, _, batch, h = cs.shape
  w_t = jnp.swapaxes(w_hh, 1, 2)
  mm = jnp.concatenate([m, m], -1)

  def step(j, state):
    t = length - 1 - j  # loop order, backwards
    dh, dc, dx = state
    dh = dh + _both(dy, t, h)
    i, f, g, o = jnp.split(_at(acts, t), 4, axis=-1)
    c = _at(cs, t)
    cp = jnp.where(t > 0, _at(cs, jnp.maximum(t - 1, 0)), 0)
    tc = jnp.tanh(c)
    dct = dc + dh * o * (1 - tc * tc)
    keep = _both(mm, t, 1) > 0
    dpre = jnp.where(
        keep,
        jnp.concatenate([
            dct * g * i * (1 - i), dct * cp * f * (1 - f), dct * i *
            (1 - g * g), dh * tc * o * (1 - o)
        ], -1), 0)
    dh = jnp.where(keep, jnp.einsum('dbk,dkh->dbh', dpre, w_t), dh)
    dc = jnp.where(keep, dct * f, dc)
    dx = lax.dynamic_update_slice(dx, dpre[0][None], (t, 0, 0))
    dx = lax.dynamic_update_slice(dx, dpre[1][None], (length - 1 - t, 0, 4 * h))
    return dh, dc, dx

  zero = jnp.zeros((2, batch, h), cs.dtype)
  dx = lax.fori_loop(0,
                     length,
                     step,
                     (zero, zero, jnp.zeros((length, batch, 8 * h), cs.dtype)),
                     unroll=2)[2]
  # The state each step started from, in time order: the forward direction
  # comes from t-1, the backward from t+1 (zero at the ends).
  z = jnp.zeros_like(y[:1, :, :h])
  h_fwd = jnp.concatenate([z, y[:-1, :, :h]])
  h_bwd = jnp.concatenate([y[1:, :, h:], z])
  dw = jnp.stack([
      jnp.einsum('tbh,tbk->hk', h_fwd, dx[..., :4 * h]),
      jnp.einsum('tbh,tbk->hk', h_bwd, dx[..., 4 * h:])
  ])
  return dx, jnp.zeros_like(m), dw


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


class BiLSTMEmbedding(nn.Module):
  """[B, L, F] features + [B, L] mask -> [B, 2 * hidden] unit vectors.

  Parameters follow PyTorch's nn.LSTM: U(+-1/sqrt(hidden)) weights, separate
  input and recurrent biases (471,040 parameters at F=272, 64, 4 layers).

  impl: 'custom' (the hand-written recurrence above) or 'flax' (the same
    network as flax.linen.RNN over OptimizedLSTMCell, one summed bias per
    gate; masks must be prefixes). Both compute the same function; 'custom'
    is faster at the original's size (docs/benchmarks.md), 'flax' also
    supports forward-mode differentiation (jax.jvp, jacfwd).
  pool: False returns the last layer's states [B, L, 2 * hidden] instead
    (the N2N removal policy's per-layer outputs).
  """
  hidden: int = 64
  num_layers: int = 4
  impl: str = 'custom'
  pool: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    if self.impl not in IMPLS:
      raise ValueError(f'unknown LSTM impl {self.impl!r}; use one of {IMPLS}')
    init = _uniform(1.0 / math.sqrt(self.hidden))
    if self.impl == 'flax':
      return self._flax(x, mask, init)
    h = jnp.swapaxes(x, 0, 1)  # [L, B, F]
    m = jnp.swapaxes(mask, 0, 1).astype(x.dtype)[..., None]  # [L, B, 1]
    for layer in range(self.num_layers):
      params = {}
      for d in ('fwd', 'bwd'):
        p = f'l{layer}_{d}_'
        dim = h.shape[-1]
        params[d] = (self.param(p + 'w_ih', init, (dim, 4 * self.hidden),
                                x.dtype),
                     self.param(p + 'w_hh', init,
                                (self.hidden, 4 * self.hidden), x.dtype),
                     self.param(p + 'b_ih', init, (4 * self.hidden,), x.dtype),
                     self.param(p + 'b_hh', init, (4 * self.hidden,), x.dtype))
      f, b = params['fwd'], params['bwd']
      w_ih = jnp.concatenate([f[0], b[0]], -1)  # [F, 8H]
      bias = jnp.concatenate([f[2] + f[3], b[2] + b[3]])
      h = _recurrence(h @ w_ih + bias, m, jnp.stack([f[1], b[1]]))
    return self._out(h, m)

  def _out(self, h: jax.Array, m: jax.Array) -> jax.Array:
    """Time-major states [L, B, 2H] and mask [L, B, 1] -> the module's
    output: pooled unit vectors [B, 2H], or the states [B, L, 2H]."""
    if not self.pool:
      return jnp.swapaxes(h, 0, 1)
    # Reduced over the time axis in time-major layout, as since the first
    # release: another layout rounds differently and changes searches.
    pooled = (h * m).sum(0) / jnp.maximum(m.sum(0), 1.0)
    norm = jnp.sqrt(jnp.sum(pooled * pooled, -1, keepdims=True) + 1e-12)
    return pooled / norm

  def _flax(self, x, mask, init):
    scale = 1.0 / math.sqrt(self.hidden)

    def bias_init(key, shape, dtype=jnp.float32):  # b_ih + b_hh
      a, b = jax.random.split(key)
      return (jax.random.uniform(a, shape, dtype, -scale, scale) +
              jax.random.uniform(b, shape, dtype, -scale, scale))

    def rnn(name):
      return nn.RNN(
          nn.OptimizedLSTMCell(self.hidden,
                               kernel_init=init,
                               recurrent_kernel_init=init,
                               bias_init=bias_init,
                               name=name))

    lengths = mask.sum(-1).astype(jnp.int32)
    h = x
    for layer in range(self.num_layers):
      h = nn.Bidirectional(rnn(f'l{layer}_fwd'),
                           rnn(f'l{layer}_bwd'))(h, seq_lengths=lengths)
    return self._out(jnp.swapaxes(h, 0, 1),
                     jnp.swapaxes(mask, 0, 1).astype(x.dtype)[..., None])


def input_kernel(params: dict) -> jax.Array:
  """The first layer's forward input weights [..., F, 4H or H] of either
  impl's parameters (leading axes: stacked kernels)."""
  if 'l0_fwd_w_ih' in params:
    return params['l0_fwd_w_ih']
  return params['l0_fwd']['ii']['kernel']


def recurrent_kernel(params: dict) -> jax.Array:
  """The first layer's forward recurrent weights [..., H, 4H or H]."""
  if 'l0_fwd_w_hh' in params:
    return params['l0_fwd_w_hh']
  return params['l0_fwd']['hi']['kernel']
