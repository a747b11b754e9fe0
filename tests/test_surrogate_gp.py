"""GP math against float64 NumPy, scikit-learn and brute-force LOO."""

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from esnac_jax.surrogate import gp


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def _data(n=18, m=7, d=6, seed=0):
  rng = np.random.default_rng(seed)
  e = rng.normal(size=(n, d)) * 0.5
  y = rng.normal(size=n)
  e_new = rng.normal(size=(m, d)) * 0.5
  h = gp.Hypers(0.3, 0.05, 1.5, 0.2)
  return e, y, e_new, h


def _numpy_gp(e, y, e_new, h):
  d2 = ((e[:, None] - e[None])**2).sum(-1)
  k = h.signal * np.exp(-d2 / (2 * h.ls2)) + h.noise * np.eye(len(e))
  r = y - h.mean
  kinv = np.linalg.inv(k)
  sign, logdet = np.linalg.slogdet(k)
  mll = -0.5 * r @ kinv @ r - 0.5 * logdet - 0.5 * len(e) * np.log(2 * np.pi)
  ks = h.signal * np.exp(-((e_new[:, None] - e[None])**2).sum(-1) / (2 * h.ls2))
  mean = h.mean + ks @ kinv @ r
  var = h.signal + h.noise - np.einsum('mn,nk,mk->m', ks, kinv, ks)
  return mll, mean, var


def test_against_float64_numpy():
  e, y, e_new, h = _data()
  mll, mean, var = _numpy_gp(e, y, e_new, h)
  mask = np.ones(len(y), bool)
  assert abs(float(gp.log_marginal_likelihood(e, y, mask, h)) - mll) < 1e-5
  m, v = gp.posterior(e, y, mask, h, e_new)
  np.testing.assert_allclose(m, mean, atol=1e-5)
  np.testing.assert_allclose(v, var, atol=1e-5)


def test_against_sklearn():
  e, y, e_new, h = _data(seed=1)
  kernel = (ConstantKernel(h.signal, 'fixed') * RBF(np.sqrt(h.ls2), 'fixed') +
            WhiteKernel(h.noise, 'fixed'))
  ref = GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None)
  ref.fit(e, y - h.mean)
  mask = np.ones(len(y), bool)
  mll = float(gp.log_marginal_likelihood(e, y, mask, h))
  assert abs(mll - ref.log_marginal_likelihood_value_) < 1e-5
  mean, std = ref.predict(e_new, return_std=True)
  m, v = gp.posterior(e, y, mask, h, e_new, include_noise=True)
  np.testing.assert_allclose(m, mean + h.mean, atol=1e-5)
  np.testing.assert_allclose(np.sqrt(v), std, atol=1e-5)


def test_padding_is_invisible():
  e, y, e_new, h = _data()
  pad = 6
  ep = np.concatenate([e, np.random.default_rng(3).normal(size=(pad, 6))])
  yp = np.concatenate([y, np.full(pad, 7.0)])
  mp = np.arange(len(yp)) < len(y)
  full = np.ones(len(y), bool)
  assert abs(
      float(gp.log_marginal_likelihood(ep, yp, mp, h)) -
      float(gp.log_marginal_likelihood(e, y, full, h))) < 1e-9
  np.testing.assert_allclose(gp.posterior(ep, yp, mp, h, e_new),
                             gp.posterior(e, y, full, h, e_new),
                             atol=1e-9)
  assert abs(
      float(gp.loo_log_likelihood(ep, yp, mp, h)) -
      float(gp.loo_log_likelihood(e, y, full, h))) < 1e-9


def test_closed_form_loo_equals_brute_force():
  e, y, _, h = _data(n=12)
  mask = np.ones(len(y), bool)
  mu, var = gp.loo_terms(e, y, mask, h)
  for i in range(len(y)):
    keep = np.arange(len(y)) != i
    m, v = gp.posterior(e[keep], y[keep], mask[keep], h, e[i:i + 1])
    assert abs(float(m[0]) - float(mu[i])) < 1e-5
    assert abs(float(v[0]) - float(var[i])) < 1e-5
  # The original's objective: mean of the per-point predictive log densities.
  ll = np.mean(-0.5 * (np.log(2 * np.pi * var) + (y - mu)**2 / var))
  assert abs(float(gp.loo_log_likelihood(e, y, mask, h)) - ll) < 1e-9


@pytest.mark.slow
def test_gradients():
  e, y, _, h = _data(n=8, d=4)
  mask = np.ones(len(y), bool)
  hv = jnp.array([h.ls2, h.noise, h.signal, h.mean])

  def mll(e, hv):
    return gp.log_marginal_likelihood(e, y, mask, gp.Hypers(*hv))

  def loo(e, hv):
    return gp.loo_log_likelihood(e, y, mask, gp.Hypers(*hv))

  def post(e, hv):
    m, v = gp.posterior(e, y, mask, gp.Hypers(*hv), e[:3] + 0.1)
    return jnp.sum(m) + jnp.sum(v)

  for f in (mll, loo, post):
    check_grads(f, (jnp.asarray(e), hv), order=1, modes=('rev',))


def test_singular_systems_stay_finite():
  # Duplicate points with no noise: the Gram matrix is singular.
  e = np.zeros((5, 3))
  y = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
  h = gp.Hypers(0.1, 0.0, 1.0, 0.0)
  mask = np.ones(5, bool)
  assert np.isfinite(float(gp.log_marginal_likelihood(e, y, mask, h)))
  m, v = gp.posterior(e, y, mask, h, e[:2])
  assert np.isfinite(m).all() and (np.asarray(v) > 0).all()
  g = jax.grad(lambda e: gp.log_marginal_likelihood(e, y, mask, h))(e)
  assert np.isfinite(g).all()
