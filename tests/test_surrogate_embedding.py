"""The BiLSTM embedding against a plain float64 NumPy LSTM (PyTorch's
nn.LSTM equations, one time step and one direction at a time)."""

import jax
import numpy as np
import pytest

from esnac_jax.surrogate.embedding import BiLSTMEmbedding


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _reference(params, x, mask, hidden, layers):
  """x [B, L, F], mask [B, L] -> [B, 2H]; masked steps keep the state."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  out = []
  for seq, valid in zip(np.asarray(x, np.float64), mask):
    h_in = seq
    for layer in range(layers):
      ys = []
      for d, order in (('fwd', range(len(seq))), ('bwd',
                                                  reversed(range(len(seq))))):
        q = lambda n: p[f'l{layer}_{d}_{n}']  # noqa: E731
        h, c = np.zeros(hidden), np.zeros(hidden)
        y = np.zeros((len(seq), hidden))
        for t in order:
          if valid[t]:
            z = h_in[t] @ q('w_ih') + q('b_ih') + h @ q('w_hh') + q('b_hh')
            i, f, g, o = np.split(z, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
          y[t] = h
        ys.append(y)
      h_in = np.concatenate(ys, -1)
    pooled = h_in[valid].mean(0)
    out.append(pooled / np.linalg.norm(pooled))
  return np.stack(out)


@pytest.mark.parametrize('layers', [1, 3])
def test_embedding_equals_numpy_lstm(layers):
  hidden, f, length = 6, 5, 7
  rng = np.random.default_rng(layers)
  x = rng.normal(size=(4, length, f)).astype(np.float32)
  mask = np.ones((4, length), bool)
  mask[1, 5:] = False  # a shorter sequence
  mask[2, 0] = False  # a gap at the start
  mask[3, 2:4] = False  # and in the middle
  model = BiLSTMEmbedding(hidden, layers)
  params = model.init(jax.random.key(0), x, mask)['params']
  got = model.apply({'params': params}, x, mask)
  np.testing.assert_allclose(got,
                             _reference(params, x, mask, hidden, layers),
                             atol=2e-5)


@pytest.mark.slow
def test_gradient_equals_autodiff_of_a_plain_scan():
  """The hand-written backward pass against JAX's own differentiation of a
  straightforward per-direction lax.scan LSTM."""
  import jax.numpy as jnp
  hidden, f, length = 5, 4, 6
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, length, f)).astype(np.float32)
  mask = np.ones((3, length), bool)
  mask[0, 4:] = False
  mask[2, 1] = False
  model = BiLSTMEmbedding(hidden, 2)
  params = model.init(jax.random.key(1), x, mask)['params']
  w = jnp.asarray(rng.normal(size=(3, 2 * hidden)), jnp.float32)

  def plain(params):
    m = jnp.asarray(mask, jnp.float32).T[..., None]  # [L, B, 1]
    h_in = jnp.swapaxes(x, 0, 1)
    for layer in range(2):
      ys = []
      for d in ('fwd', 'bwd'):
        q = lambda n: params[f'l{layer}_{d}_{n}']  # noqa: E731
        xs = h_in @ q('w_ih') + q('b_ih') + q('b_hh')
        ms = m
        if d == 'bwd':
          xs, ms = xs[::-1], ms[::-1]

        def step(carry, inp, q=q):
          h, c = carry
          xt, mt = inp
          i, f_, g, o = jnp.split(xt + h @ q('w_hh'), 4, -1)
          cn = jax.nn.sigmoid(f_) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
          hn = jax.nn.sigmoid(o) * jnp.tanh(cn)
          c = jnp.where(mt > 0, cn, c)
          h = jnp.where(mt > 0, hn, h)
          return (h, c), h

        zero = jnp.zeros((x.shape[0], hidden))
        y = jax.lax.scan(step, (zero, zero), (xs, ms))[1]
        ys.append(y if d == 'fwd' else y[::-1])
      h_in = jnp.concatenate(ys, -1)
    pooled = (h_in * m).sum(0) / m.sum(0)
    e = pooled / jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return jnp.sum(e * w)

  ours = lambda p: jnp.sum(model.apply({'params': p}, x, mask) * w)  # noqa
  np.testing.assert_allclose(ours(params), plain(params), rtol=1e-5)
  g_ours, g_plain = jax.grad(ours)(params), jax.grad(plain)(params)
  for k in g_plain:
    np.testing.assert_allclose(g_ours[k],
                               g_plain[k],
                               atol=1e-5,
                               rtol=1e-4,
                               err_msg=k)


def _to_flax(params, hidden, layers):
  """The custom impl's parameters in flax OptimizedLSTMCell's layout (gate
  order i, f, g, o; the two biases summed)."""
  out = {}
  for layer in range(layers):
    for d in ('fwd', 'bwd'):
      q = lambda n: params[f'l{layer}_{d}_{n}']  # noqa: E731
      cell = {}
      for g, name in enumerate('ifgo'):
        cols = slice(g * hidden, (g + 1) * hidden)
        cell['i' + name] = {'kernel': q('w_ih')[:, cols]}
        cell['h' + name] = {
            'kernel': q('w_hh')[:, cols],
            'bias': q('b_ih')[cols] + q('b_hh')[cols]
        }
      out[f'l{layer}_{d}'] = cell
  return out


@pytest.mark.slow
def test_flax_impl_computes_the_same_function():
  """impl='flax' (flax.linen.RNN over OptimizedLSTMCell) given the same
  weights: equal embeddings, states and gradients, sequences of several
  lengths."""
  import jax.numpy as jnp
  hidden, layers, f, length = 5, 2, 4, 7
  rng = np.random.default_rng(3)
  x = rng.normal(size=(4, length, f)).astype(np.float32)
  mask = np.arange(length)[None] < np.array([7, 5, 1, 3])[:, None]
  custom = BiLSTMEmbedding(hidden, layers)
  flax_ = BiLSTMEmbedding(hidden, layers, impl='flax')
  params = custom.init(jax.random.key(2), x, mask)['params']
  shapes = jax.tree_util.tree_map(
      np.shape,
      flax_.init(jax.random.key(2), x, mask)['params'])
  assert jax.tree_util.tree_map(np.shape, _to_flax(params, hidden,
                                                   layers)) == shapes
  w = jnp.asarray(rng.normal(size=(4, 2 * hidden)), jnp.float32)

  def loss(model, convert):
    return lambda p: jnp.sum(model.apply({'params': convert(p)}, x, mask) * w)

  ours = loss(custom, lambda p: p)
  theirs = loss(flax_, lambda p: _to_flax(p, hidden, layers))
  np.testing.assert_allclose(ours(params), theirs(params), rtol=1e-5)
  g_ours, g_theirs = jax.grad(ours)(params), jax.grad(theirs)(params)
  for k in g_ours:
    np.testing.assert_allclose(g_ours[k],
                               g_theirs[k],
                               atol=1e-5,
                               rtol=1e-4,
                               err_msg=k)
  # pool=False: the last layer's states, which the pooled output averages
  # over the valid steps.
  states = [
      BiLSTMEmbedding(hidden, layers, impl=i, pool=False).apply({'params': p},
                                                                x, mask)
      for i, p in (('custom', params), ('flax',
                                        _to_flax(params, hidden, layers)))
  ]
  assert states[0].shape == (4, length, 2 * hidden)
  np.testing.assert_allclose(np.where(mask[..., None], states[0], 0),
                             np.where(mask[..., None], states[1], 0),
                             atol=1e-5)
  pooled = (states[0] * mask[..., None]).sum(1) / mask.sum(1)[:, None]
  np.testing.assert_allclose(custom.apply({'params': params}, x, mask),
                             pooled /
                             np.linalg.norm(pooled, axis=-1, keepdims=True),
                             atol=1e-5)


def test_unknown_impl_is_refused():
  x = np.zeros((1, 2, 3), np.float32)
  with pytest.raises(ValueError, match="unknown LSTM impl 'torch'"):
    BiLSTMEmbedding(4, 1, impl='torch').init(jax.random.key(0), x,
                                             np.ones((1, 2), bool))
