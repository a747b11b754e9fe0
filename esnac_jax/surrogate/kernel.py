"""The learnable embedding kernel: BiLSTM + GP, fitted jointly, batched.

Pure functions of (params, arrays) with a static `SurrogateConfig`:

  init(key, cfg, feature_dim, num_kernels=None) -> params
  embed(params, cfg, feats, mask)                 -> [B, 2 * hidden]
  objective(params, cfg, feats, fmask, y, ymask)  -> log-likelihood
  fit(params, cfg, feats, fmask, y, ymask)        -> (params, FitInfo)
  fit_many(params_k, cfg, feats, fmask, y, ymask_k)   K kernels, one program
  posterior(params, cfg, feats, fmask, y, ymask, new_feats, new_fmask)
  score(params_k, cfg, ..., new_feats, new_fmask, kind, key) -> [K, M]
  posteriors(params_k, cfg, ..., new_feats, new_fmask) -> mean, std [K, M]

feats: [N, L, F] per-layer features; fmask: [N, L] valid layers;
y: [N] rewards; ymask: [N] valid history points (padding is masked).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esnac_jax.surrogate import acquisition as acq
from esnac_jax.surrogate import gp
from esnac_jax.surrogate.ahead import Ahead
from esnac_jax.surrogate.embedding import (IMPLS, BiLSTMEmbedding,
                                           recurrent_kernel)
from esnac_jax.surrogate.history import bucket_size, check_inputs, pad_history

OBJECTIVES = ('mll', 'loo')
Params = Any


@dataclasses.dataclass(frozen=True)
class SurrogateConfig:
  """Static settings of the kernel (hashable: a jit static argument).

  objective: 'mll' log marginal likelihood (default) or 'loo' the original's
    mean leave-one-out predictive log-likelihood.
  learn_hypers: fit ls2, noise, signal and mean with the LSTM; otherwise they
    stay at the values below (the original: 0.01, 0.05, 1, 0).
  normalize_y: standardise rewards over the valid points before the GP.
  include_noise: predictive variance of a noisy observation (original).
  lr / weight_decay: Adam on the LSTM with coupled L2 decay, as torch's Adam;
    hyper_lr: Adam on the log-hyperparameters.
  max_steps / min_steps / ema / tol: the original's stopping rule: stop at
    step j >= min_steps once |EMA(ll) - ll| < tol, EMA weight `ema`.
  train_embedding: False keeps the LSTM as given (a transferred embedding)
    and fits only the GP hyperparameters.
  """
  hidden: int = 32
  num_layers: int = 2
  objective: str = 'mll'
  learn_hypers: bool = True
  ls2: float = 0.01
  noise: float = 0.05
  signal: float = 1.0
  mean: float = 0.0
  normalize_y: bool = True
  include_noise: bool = True
  lr: float = 1e-3
  hyper_lr: float = 0.05
  weight_decay: float = 5e-4
  max_steps: int = 100
  min_steps: int = 6
  ema: float = 0.5
  tol: float = 1e-3
  train_embedding: bool = True
  lstm_impl: str = 'custom'

  def __post_init__(self):
    if self.lstm_impl not in IMPLS:
      raise ValueError(f'unknown lstm_impl {self.lstm_impl!r}; use one of '
                       f'{IMPLS}')
    if self.objective not in OBJECTIVES:
      raise ValueError(f'unknown surrogate objective {self.objective!r}; use '
                       f'one of {OBJECTIVES}')
    for name in ('hidden', 'num_layers', 'max_steps'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
    for name in ('ls2', 'noise', 'signal', 'lr'):
      if not getattr(self, name) > 0:
        raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')

  @classmethod
  def faithful(cls, **overrides) -> SurrogateConfig:
    """The original ESNAC kernel: 64 x 4 LSTM, LOO objective, fixed
    alpha/beta, raw y."""
    base = dict(hidden=64,
                num_layers=4,
                objective='loo',
                learn_hypers=False,
                normalize_y=False,
                ls2=0.01,
                noise=0.05,
                signal=1.0,
                mean=0.0)
    base.update(overrides)
    return cls(**base)


class FitInfo(NamedTuple):
  steps: jax.Array  # optimiser steps taken
  ll: jax.Array  # objective at the last evaluated step


def _module(cfg: SurrogateConfig) -> BiLSTMEmbedding:
  return BiLSTMEmbedding(cfg.hidden, cfg.num_layers, cfg.lstm_impl)


@functools.partial(jax.jit,
                   static_argnames=('cfg', 'feature_dim', 'num_kernels'))
def init(key: jax.Array,
         cfg: SurrogateConfig,
         feature_dim: int,
         num_kernels: int | None = None) -> Params:
  """Fresh parameters; with num_kernels, K independent sets stacked on axis 0.
  Jitted: run eagerly, Flax's initialisation compiles a few dozen small
  programs and its LSTM scan again at every call (0.3 s per search step on
  a CPU, 1.5 s the first time)."""
  if num_kernels is not None:
    return jax.vmap(lambda k: init(k, cfg, feature_dim))(jax.random.split(
        key, num_kernels))
  x = jnp.zeros((1, 2, feature_dim), jnp.float32)
  lstm = _module(cfg).init(key, x, jnp.ones((1, 2), bool))['params']
  gp_params = {
      'log_ls2': jnp.log(jnp.float32(cfg.ls2)),
      'log_noise': jnp.log(jnp.float32(cfg.noise)),
      'log_signal': jnp.log(jnp.float32(cfg.signal)),
      'mean': jnp.float32(cfg.mean)
  }
  return {'lstm': lstm, 'gp': gp_params}


def hypers(params: Params, cfg: SurrogateConfig) -> gp.Hypers:
  if not cfg.learn_hypers:
    f = jnp.float32
    return gp.Hypers(f(cfg.ls2), f(cfg.noise), f(cfg.signal), f(cfg.mean))
  g = params['gp']
  return gp.Hypers(jnp.exp(g['log_ls2']),
                   jnp.exp(g['log_noise']) + 1e-6, jnp.exp(g['log_signal']),
                   g['mean'])


def embed(params: Params, cfg: SurrogateConfig, feats: jax.Array,
          mask: jax.Array) -> jax.Array:
  """Unit-norm embeddings [B, 2 * hidden] of feature sequences [B, L, F]."""
  return _module(cfg).apply({'params': params['lstm']}, feats, mask)


# Rewards whose spread is below this fraction of their magnitude are
# constant to float32 rounding: standardising them by that spread would
# turn rounding noise into unit-scale signal.
CONSTANT_RTOL = 1e-5


def _standardise(y, ymask, cfg):
  if not cfg.normalize_y:
    return y, jnp.zeros((), y.dtype), jnp.ones((), y.dtype)
  m = ymask.astype(y.dtype)
  n = jnp.maximum(m.sum(), 1.0)
  mu = jnp.sum(y * m) / n
  sd = jnp.sqrt(jnp.sum(((y - mu) * m)**2) / n)
  scale = jnp.max(jnp.where(ymask, jnp.abs(y), 0.0))
  sd = jnp.where(sd > CONSTANT_RTOL * scale, sd, 1.0)
  return (y - mu) / sd, mu, sd


def objective(params: Params, cfg: SurrogateConfig, feats, fmask, y,
              ymask) -> jax.Array:
  """The log-likelihood that fitting maximises."""
  e = embed(params, cfg, feats, fmask)
  yn, _, _ = _standardise(y, ymask, cfg)
  h = hypers(params, cfg)
  if cfg.objective == 'loo':
    return gp.loo_log_likelihood(e, yn, ymask, h)
  return gp.log_marginal_likelihood(e, yn, ymask, h) / jnp.maximum(
      ymask.sum(), 1)


def optimizer(cfg: SurrogateConfig) -> optax.GradientTransformation:
  """Adam with coupled L2 (torch semantics) on the LSTM; Adam on hypers."""
  lstm = optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                     optax.adam(cfg.lr)) if cfg.train_embedding else \
      optax.set_to_zero()
  return optax.multi_transform({
      'lstm': lstm,
      'gp': optax.adam(cfg.hyper_lr)
  }, {
      'lstm': 'lstm',
      'gp': 'gp'
  })


def _fit(params,
         cfg: SurrogateConfig,
         feats,
         fmask,
         y,
         ymask,
         objective_fn=None):
  tx = optimizer(cfg)
  grad_fn = jax.value_and_grad(objective_fn or objective)

  def cond(s):
    step, _, _, _, _, done = s
    return (step < cfg.max_steps) & ~done

  def body(s):
    step, p, opt_state, ma, _, _ = s
    ll, g = grad_fn(p, cfg, feats, fmask, y, ymask)
    g = jax.tree_util.tree_map(lambda x: -x, g)  # maximise
    updates, opt_state = tx.update(g, opt_state, p)
    p = optax.apply_updates(p, updates)
    ma = jnp.where(step > 0, cfg.ema * ll + (1 - cfg.ema) * ma, ll)
    done = (step >= cfg.min_steps) & (jnp.abs(ma - ll) < cfg.tol)
    return step + 1, p, opt_state, ma, ll, done

  zero = jnp.zeros((), jnp.float32)
  # Fewer than two points: nothing to learn (the original skips training).
  done0 = jnp.max(ymask.sum(-1)) < 2
  state = (jnp.zeros((), jnp.int32), params, tx.init(params), zero, zero, done0)
  step, params, _, _, ll, _ = jax.lax.while_loop(cond, body, state)
  return params, FitInfo(step, ll)


@functools.partial(jax.jit, static_argnames='cfg')
def _fit_jit(params: Params, cfg: SurrogateConfig, feats, fmask, y,
             ymask) -> tuple[Params, FitInfo]:
  """The jitted program behind `fit`."""
  return _fit(params, cfg, feats, fmask, y, ymask)


@functools.partial(jax.jit, static_argnames=('cfg', 'per_kernel'))
def _fit_many_jit(params_k: Params,
                  cfg: SurrogateConfig,
                  feats,
                  fmask,
                  y,
                  ymask_k,
                  per_kernel: bool = False) -> tuple[Params, FitInfo]:
  """The jitted program behind `fit_many`."""
  ax = 0 if per_kernel else None
  return jax.vmap(_fit, in_axes=(0, None, ax, ax, ax, 0))(params_k, cfg, feats,
                                                          fmask, y, ymask_k)


def gather_subsets(feats, fmask, y, ymask_k, size: int | None = None):
  """Per-kernel compact copies of the points each subset mask selects.

  Returns feats [K, S, L, F], fmask [K, S, L], y [K, S], ymask [K, S] with
  S = `size` or the bucket of the largest subset.
  """
  ymask_k = np.asarray(ymask_k, bool)
  biggest = int(ymask_k.sum(1).max()) if len(ymask_k) else 0
  size = size or bucket_size(biggest)
  out = [
      pad_history(feats[m], fmask[m],
                  np.asarray(y)[m], size) for m in ymask_k
  ]
  return tuple(np.stack(z) for z in zip(*out))


def _shared_objective(params, cfg, feats, fmask, y, ymask_k):
  e = embed(params, cfg, feats, fmask)

  def head(g, ym):
    yn, _, _ = _standardise(y, ym, cfg)
    h = hypers({'gp': g}, cfg)
    if cfg.objective == 'loo':
      return gp.loo_log_likelihood(e, yn, ym, h)
    return gp.log_marginal_likelihood(e, yn, ym, h) / jnp.maximum(ym.sum(), 1)

  return jnp.mean(jax.vmap(head)(params['gp'], ymask_k))


@functools.partial(jax.jit, static_argnames='cfg')
def _fit_shared_jit(params: Params, cfg: SurrogateConfig, feats, fmask, y,
                    ymask_k) -> tuple[Params, FitInfo]:
  """The jitted program behind `fit_shared`."""
  return _fit(params, cfg, feats, fmask, y, ymask_k, _shared_objective)


@functools.partial(jax.jit,
                   static_argnames=('cfg', 'feature_dim', 'num_kernels'))
def init_shared(key: jax.Array, cfg: SurrogateConfig, feature_dim: int,
                num_kernels: int) -> Params:
  p = init(key, cfg, feature_dim)
  p['gp'] = jax.tree_util.tree_map(
      lambda a: jnp.broadcast_to(a, (num_kernels,) + a.shape), p['gp'])
  return p


def _gp_posterior(params, cfg, e, y, ymask, e_new):
  yn, mu, sd = _standardise(y, ymask, cfg)
  mean, var = gp.posterior(e, yn, ymask, hypers(params, cfg), e_new,
                           cfg.include_noise)
  return mu + sd * mean, sd * sd * var


def _posterior(params, cfg, feats, fmask, y, ymask, new_feats, new_fmask):
  e = embed(params, cfg, feats, fmask)
  e_new = embed(params, cfg, new_feats, new_fmask)
  return _gp_posterior(params, cfg, e, y, ymask, e_new)


@functools.partial(jax.jit, static_argnames='cfg')
def _posterior_jit(params: Params, cfg: SurrogateConfig, feats, fmask, y, ymask,
                   new_feats, new_fmask) -> tuple[jax.Array, jax.Array]:
  """The jitted program behind `posterior`."""
  return _posterior(params, cfg, feats, fmask, y, ymask, new_feats, new_fmask)


def _kernel_posteriors(params_k, cfg, feats, fmask, y, ymask_k, new_feats,
                       new_fmask, per_kernel):
  """Each kernel's predictive mean and variance [K, M] of the candidates and
  its incumbent [K] (the best reward in its subset; the prior mean for an
  empty subset)."""
  ax = 0 if per_kernel else None

  def one(p, ym, e, e_new):
    mean, var = _gp_posterior(p, cfg, e, y, ym, e_new)
    best = jnp.where(jnp.any(ym), jnp.max(jnp.where(ym, y, -jnp.inf)),
                     mu_prior(p, cfg, y, ym))
    return mean, var, best

  if _is_shared(params_k):
    lstm = {'lstm': params_k['lstm']}
    e = embed(lstm, cfg, feats, fmask)
    if per_kernel:
      e_new = jax.vmap(lambda nf, nm: embed(lstm, cfg, nf, nm))(new_feats,
                                                                new_fmask)
    else:
      e_new = embed(lstm, cfg, new_feats, new_fmask)
    return jax.vmap(lambda g, ym, en: one({'gp': g}, ym, e, en),
                    in_axes=(0, 0, ax))(params_k['gp'], ymask_k, e_new)

  def own(p, ym, nf, nm):
    return one(p, ym, embed(p, cfg, feats, fmask), embed(p, cfg, nf, nm))

  return jax.vmap(own, in_axes=(0, 0, ax, ax))(params_k, ymask_k, new_feats,
                                               new_fmask)


@functools.partial(jax.jit, static_argnames=('cfg', 'kind', 'per_kernel'))
def _score_jit(params_k: Params,
               cfg: SurrogateConfig,
               feats,
               fmask,
               y,
               ymask_k,
               new_feats,
               new_fmask,
               kind: str = 'ei',
               key: jax.Array | None = None,
               beta: float = 2.0,
               per_kernel: bool = False) -> jax.Array:
  """The jitted program behind `score`."""
  mean, var, best = _kernel_posteriors(params_k, cfg, feats, fmask, y, ymask_k,
                                       new_feats, new_fmask, per_kernel)
  keys = jax.random.split(key if key is not None else jax.random.key(0),
                          mean.shape[0])
  return jax.vmap(
      lambda m, v, b, kk: acq.acquire(kind, m, jnp.sqrt(v), b, kk, beta))(mean,
                                                                          var,
                                                                          best,
                                                                          keys)


@functools.partial(jax.jit, static_argnames=('cfg', 'per_kernel'))
def _posteriors_jit(params_k: Params,
                    cfg: SurrogateConfig,
                    feats,
                    fmask,
                    y,
                    ymask_k,
                    new_feats,
                    new_fmask,
                    per_kernel: bool = False) -> tuple[jax.Array, jax.Array]:
  """The jitted program behind `posteriors`."""
  mean, var, _ = _kernel_posteriors(params_k, cfg, feats, fmask, y, ymask_k,
                                    new_feats, new_fmask, per_kernel)
  return mean, jnp.sqrt(var)


def mu_prior(params: Params, cfg: SurrogateConfig, y, ymask) -> jax.Array:
  """The GP's prior mean in reward units."""
  _, mu, sd = _standardise(y, ymask, cfg)
  return mu + sd * hypers(params, cfg).mean


# ---- the public entry points: inputs checked, then the jitted programs --

# Static arguments of the jitted programs (for surrogate.ahead).
FIT_STATIC = ('cfg',)
FIT_MANY_STATIC = ('cfg', 'per_kernel')
SCORE_STATIC = ('cfg', 'kind', 'per_kernel')
POSTERIORS_STATIC = ('cfg', 'per_kernel')


class _Now:
  """Calls the jitted program directly (no executables compiled ahead)."""

  @staticmethod
  def call(fn, static, *args, **kwargs):
    del static
    return fn(*args, **kwargs)


_NOW = _Now()


def fit(params: Params, cfg: SurrogateConfig, feats, fmask, y,
        ymask) -> tuple[Params, FitInfo]:
  """Fits one kernel (LSTM and, if learned, hyperparameters) in one program."""
  check_inputs(params, cfg, feats, fmask, y, ymask)
  return _fit_jit(params, cfg, feats, fmask, y, ymask)


def fit_many(params_k: Params,
             cfg: SurrogateConfig,
             feats,
             fmask,
             y,
             ymask_k,
             per_kernel: bool = False,
             ahead: Ahead | None = None) -> tuple[Params, FitInfo]:
  """K kernels, vmapped in one program.

  Shared data (feats [N, L, F], y [N]) with a subset mask ymask_k [K, N]; or,
  with per_kernel=True, each kernel's own compacted subset (feats [K, N, L, F],
  y [K, N], ymask_k [K, N], see `gather_subsets`), which embeds only the
  points a kernel uses: half the work of masking with Bernoulli(0.5) subsets.
  `ahead`: executables compiled ahead of time (surrogate.ahead) to use.
  """
  check_inputs(params_k,
               cfg,
               feats,
               fmask,
               y,
               ymask_k,
               kernels=True,
               per_kernel=per_kernel)
  return (ahead or _NOW).call(_fit_many_jit,
                              FIT_MANY_STATIC,
                              params_k,
                              cfg,
                              feats,
                              fmask,
                              y,
                              ymask_k,
                              per_kernel=per_kernel)


def fit_shared(params: Params,
               cfg: SurrogateConfig,
               feats,
               fmask,
               y,
               ymask_k,
               ahead: Ahead | None = None) -> tuple[Params, FitInfo]:
  """One embedding shared by K GP heads, each on its own subset [K, N].

  params: one LSTM and K stacked GP hyperparameter sets (`init_shared`).
  Each step embeds the history once instead of K times.
  """
  check_inputs(params, cfg, feats, fmask, y, ymask_k, kernels=True)
  return (ahead or _NOW).call(_fit_shared_jit, FIT_STATIC, params, cfg, feats,
                              fmask, y, ymask_k)


def posterior(params: Params, cfg: SurrogateConfig, feats, fmask, y, ymask,
              new_feats, new_fmask) -> tuple[jax.Array, jax.Array]:
  """Predictive mean and variance [M] of new sequences, in reward units."""
  check_inputs(params, cfg, feats, fmask, y, ymask, new_feats, new_fmask)
  return _posterior_jit(params, cfg, feats, fmask, y, ymask, new_feats,
                        new_fmask)


def score(params_k: Params,
          cfg: SurrogateConfig,
          feats,
          fmask,
          y,
          ymask_k,
          new_feats,
          new_fmask,
          kind: str = 'ei',
          key: jax.Array | None = None,
          beta: float = 2.0,
          per_kernel: bool = False,
          ahead: Ahead | None = None) -> jax.Array:
  """Acquisition values [K, M] of M candidates under each of K kernels.

  new_feats is [M, L, F] shared by all kernels, or with per_kernel=True
  [K, M, L, F], each kernel scoring its own pool (the original). The
  incumbent for EI is the best valid reward in each kernel's own subset
  (the prior mean for an empty subset). params_k from `init_shared`/
  `fit_shared` (one LSTM, K GP heads) embed the history and a shared pool
  once.
  """
  if kind not in acq.KINDS:
    raise ValueError(f'unknown acquisition {kind!r}; use one of '
                     f'{acq.KINDS}')
  return _pool_call(_score_jit,
                    SCORE_STATIC,
                    ahead,
                    params_k,
                    cfg,
                    feats,
                    fmask,
                    y,
                    ymask_k,
                    new_feats,
                    new_fmask,
                    per_kernel,
                    kind=kind,
                    key=key,
                    beta=beta)


def posteriors(params_k: Params,
               cfg: SurrogateConfig,
               feats,
               fmask,
               y,
               ymask_k,
               new_feats,
               new_fmask,
               per_kernel: bool = False,
               ahead: Ahead | None = None) -> tuple[jax.Array, jax.Array]:
  """Each of K kernels' predictive mean and standard deviation [K, M] of M
  candidates, in reward units: what an acquisition computed outside the
  kernel (search.pareto's hypervolume improvement) needs. Arguments as
  `score`."""
  return _pool_call(_posteriors_jit, POSTERIORS_STATIC, ahead, params_k, cfg,
                    feats, fmask, y, ymask_k, new_feats, new_fmask, per_kernel)


def _pool_call(fn, static, ahead: Ahead | None, params_k: Params,
               cfg: SurrogateConfig, feats, fmask, y, ymask_k, new_feats,
               new_fmask, per_kernel: bool, **kwargs):
  """Checks the inputs of a program that scores a candidate pool under K
  kernels, then calls it (compiled ahead when `ahead` has it)."""
  check_inputs(params_k,
               cfg,
               feats,
               fmask,
               y,
               ymask_k,
               new_feats,
               new_fmask,
               kernels=True,
               per_kernel=per_kernel,
               per_kernel_history=False)
  return (ahead or _NOW).call(fn,
                              static,
                              params_k,
                              cfg,
                              feats,
                              fmask,
                              y,
                              ymask_k,
                              new_feats,
                              new_fmask,
                              per_kernel=per_kernel,
                              **kwargs)


def _is_shared(params: Params) -> bool:
  """One unstacked LSTM with stacked GP heads (from `init_shared`)."""
  return recurrent_kernel(params['lstm']).ndim == 2
