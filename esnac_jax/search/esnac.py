"""The ESNAC searcher: K learned-embedding GP kernels propose K candidates.

Each `ask(K)`:
  1. history = the teacher as an anchor with reward 0 (optional) + every
     evaluated candidate; kernel k sees a Bernoulli(subset_prob) subset of
     it (the anchor always), as the original's multiple-kernel strategy;
  2. the K kernels (BiLSTM + GP) are fitted in one compiled program:
     independent LSTMs (`shared_lstm=False`, the original) or one LSTM with
     K GP heads;
  3. candidate pools — one per kernel of `pool_size` i.i.d. prior samples
     (original), or one shared pool, part of it mutations of the best
     candidates so far — are featurised and scored in one call;
  4. each kernel takes its best-scoring candidate that no earlier kernel
     took and that was never evaluated.
With a pareto objective the kernels model validation accuracy (no teacher
anchor: the teacher's reward 0 says nothing about its accuracy) and score
by expected hypervolume improvement of the accuracy-size front, each pick
added to the front at its predicted mean before the next (search.pareto).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax.arch import Arch, SamplerConfig, batch_features, feature_dim
from esnac_jax.search import fidelity, pareto
from esnac_jax.search.base import Searcher
from esnac_jax.search.reward import Constraints
from esnac_jax.surrogate import kernel as K
from esnac_jax.surrogate.ahead import Ahead
from esnac_jax.surrogate.acquisition import KINDS as ACQUISITIONS
from esnac_jax.surrogate.acquisition import select_batch


@dataclasses.dataclass(frozen=True)
class ESNACConfig:
  """How the ESNAC searcher proposes. The defaults are the default preset;
  `faithful()` is the original. Every field is a key of the config's
  search.esnac section (surrogate: search.surrogate).

  features: 'normalized' or the original's raw 272-d 'original' features.
  shared_lstm: one LSTM with K GP heads, or K independent LSTMs.
  pool_size: candidates scored per step (ac_search_n); pool_per_kernel: a
    pool for every kernel (the original) instead of one shared pool.
  mutate_frac: share of the pool made of one-step mutations of the
    `parents` best candidates so far (the rest: prior samples).
  acquisition: 'ei' | 'ucb' | 'thompson'.
  subset_prob: each kernel fits on a Bernoulli(subset_prob) subset of the
    history (co_gamma).
  teacher_anchor: the teacher joins every fit with reward 0.
  warm_start: start each fit from the previous step's parameters.
  init_random: candidates drawn from the prior before the surrogate
    proposes (an initial design: asks made while fewer than this many
    candidates are evaluated draw from the prior alone).
  random_frac: share of every later batch drawn from the prior.
  fidelity: what the surrogate fits on when successive halving stopped
    candidates early: 'raw' | 'extrapolate' | 'full_only' (search.fidelity).
  skip_hopeless: never propose a candidate whose reward at accuracy 1
    would not beat the best so far (objective reward: the size factor
    c(2 - c) bounds what a child can reach, so this is a parameter limit
    that tightens as the best improves), while any other can be drawn.
  """
  surrogate: K.SurrogateConfig = K.SurrogateConfig()
  features: str = 'normalized'
  shared_lstm: bool = True
  pool_size: int = 1000
  pool_per_kernel: bool = False
  mutate_frac: float = 0.5
  parents: int = 32
  acquisition: str = 'ei'
  subset_prob: float = 0.5
  teacher_anchor: bool = True
  warm_start: bool = False
  init_random: int = 8
  random_frac: float = 0.25
  fidelity: str = 'extrapolate'
  skip_hopeless: bool = False

  def __post_init__(self):
    feature_dim(self.features)  # unknown kinds raise
    if self.acquisition not in ACQUISITIONS:
      raise ValueError(f'unknown acquisition {self.acquisition!r}; use one of '
                       f'{ACQUISITIONS}')
    if self.pool_size < 1 or self.parents < 1:
      raise ValueError('pool_size and parents must be >= 1, got '
                       f'{self.pool_size} and {self.parents}')
    if self.init_random < 0:
      raise ValueError(f'init_random must be >= 0, got {self.init_random}')
    if self.fidelity not in fidelity.MODES:
      raise ValueError(f'unknown fidelity {self.fidelity!r}; use one of '
                       f'{fidelity.MODES}')
    for name in ('mutate_frac', 'subset_prob', 'random_frac'):
      if not 0 <= getattr(self, name) <= 1:
        raise ValueError(f'{name} must be in [0, 1], got '
                         f'{getattr(self, name)}')

  @classmethod
  def faithful(cls, **overrides) -> ESNACConfig:
    """The original: 8 fresh H=64x4 LSTMs on raw 272-d features, LOO with
    fixed alpha/beta, 1000 i.i.d. prior samples per kernel, EI."""
    base = dict(surrogate=K.SurrogateConfig.faithful(),
                features='original',
                shared_lstm=False,
                pool_size=1000,
                pool_per_kernel=True,
                mutate_frac=0.0,
                acquisition='ei',
                subset_prob=0.5,
                teacher_anchor=True,
                warm_start=False,
                init_random=0,
                random_frac=0.0,
                fidelity='raw',
                skip_hopeless=False)
    base.update(overrides)
    return cls(**base)


class ESNACSearcher(Searcher):
  name = 'esnac'

  def __init__(self,
               teacher: Arch,
               sampler: SamplerConfig,
               seed: int,
               constraints: Constraints = Constraints(),
               config: ESNACConfig = ESNACConfig(),
               embedding: Any = None,
               compile_ahead: bool | None = None):
    """`embedding`: LSTM parameters to start every fit from (a transferred
    embedding, see surrogate.transfer) instead of a fresh initialisation.
    `compile_ahead`: compile the next history bucket's programs in a
    background thread; by default only when JAX computes on an accelerator
    (on a CPU backend the compile would take cores from the training)."""
    super().__init__(teacher, sampler, seed, constraints)
    self.config = config
    self.embedding = embedding
    self.params: Any = None  # the last fitted surrogate (warm start, transfer)
    self._ahead = Ahead()  # the next history bucket, compiled ahead
    self.compile_ahead = (jax.default_backend() != 'cpu'
                          if compile_ahead is None else compile_ahead)
    self._ask_size = 1  # candidates per ask (how fast the history grows)
    self.last_fit: dict[str, Any] = {}
    self._feats: dict[Arch, np.ndarray] = {}

  # ---- features ------------------------------------------------------------

  def features(self, archs: list[Arch]) -> np.ndarray:
    """[len(archs), layers, F], cached per Arch (the history; candidate
    pools featurise themselves, `Candidates.features`)."""
    missing = [a for a in dict.fromkeys(archs) if a not in self._feats]
    if missing:
      for a, f in zip(
          missing, batch_features(missing, self.teacher, self.config.features)):
        self._feats[a] = f
    return np.stack([self._feats[a] for a in archs])

  # ---- ask -----------------------------------------------------------------

  def _ask(self, n: int, rng: np.random.Generator,
           key: jax.Array) -> list[Arch]:
    cfg = self.config
    self._ask_size = n
    if len(self.records) < cfg.init_random:
      return self.draw(rng, n, exclude=self.seen)
    n_prior = int(round(n * cfg.random_frac))
    out = self._propose(n - n_prior, rng, key) if n > n_prior else []
    if n_prior:
      out += self._winnable(self.draw,
                            rng,
                            n_prior,
                            exclude=self.seen | set(out))
    return out

  def _winnable(self, fn, *args, **kwargs):
    """fn(*args, **kwargs) (draw or candidates) under `winnable()`, or
    under the searcher's own constraints where nothing within that limit
    can be drawn."""
    cons = self.winnable()
    if cons is not self.constraints:
      try:
        return fn(*args, constraints=cons, **kwargs)
      except ValueError:
        pass
    return fn(*args, **kwargs)

  def _propose(self, n: int, rng: np.random.Generator,
               key: jax.Array) -> list[Arch]:
    """n candidates chosen by the surrogate (one per kernel)."""
    cfg = self.config
    scfg = cfg.surrogate
    k_init, k_score = jax.random.split(key)
    axis = self.constraints.pareto_axis
    anchor = cfg.teacher_anchor and axis is None
    used, values = fidelity.fit_targets(self.records, cfg.fidelity, axis
                                        is not None)
    hist = ([self.teacher] if anchor else []) + \
        [self.records[i].arch for i in used]
    y = np.concatenate([[0.0] if anchor else [], values]).astype(np.float32)
    subsets = rng.random((n, len(hist))) < cfg.subset_prob
    if anchor:
      subsets[:, 0] = True

    seen = self.seen
    seen_keys = self.keys(seen)
    parents = [r.arch for r in self.best(cfg.parents)] if axis is None else \
        self.front_parents(cfg.parents)
    # A pool is best effort: a small search space gives a smaller one.
    pools = [
        self._winnable(self.candidates,
                       rng,
                       cfg.pool_size,
                       parents,
                       cfg.mutate_frac,
                       seen_keys,
                       distinct=not cfg.pool_per_kernel,
                       at_least=1)
        for _ in range(n if cfg.pool_per_kernel else 1)
    ]

    if not hist:  # no anchor, nothing evaluated: nothing to fit
      return self.draw(rng, n, exclude=seen)

    feats = self.features(hist)
    fmask = np.ones(feats.shape[:2], bool)
    size = K.bucket_size(len(hist))
    pf, pm, py, pym = K.pad_history(feats, fmask, y, size)
    ymask_k = np.zeros((n, size), bool)
    ymask_k[:, :len(hist)] = subsets

    fdim = feats.shape[-1]
    warm = cfg.warm_start and self.params is not None and \
        _num_kernels(self.params) == n
    if cfg.shared_lstm:
      params = self.params if warm else K.init_shared(k_init, scfg, fdim, n)
      if self.embedding is not None and not warm:
        params['lstm'] = jax.tree_util.tree_map(jnp.asarray, self.embedding)
      params, info = K.fit_shared(params,
                                  scfg,
                                  pf,
                                  pm,
                                  py,
                                  ymask_k,
                                  ahead=self._ahead)
    else:
      params = self.params if warm else K.init(k_init, scfg, fdim, n)
      if self.embedding is not None and not warm:
        params['lstm'] = jax.tree_util.tree_map(
            lambda a: jnp.broadcast_to(a, (n,) + a.shape), self.embedding)
      sub = K.gather_subsets(feats, fmask, y, subsets)
      params, info = K.fit_many(params,
                                scfg,
                                *sub,
                                per_kernel=True,
                                ahead=self._ahead)
    self.params = jax.device_get(params)
    self.last_fit = {
        'steps': np.asarray(info.steps).tolist(),
        'objective': np.asarray(info.ll).tolist()
    }

    kind = cfg.features
    if cfg.pool_per_kernel:
      new = np.stack([p.features(self.teacher, kind) for p in pools])
      ids: Any = [p.keys for p in pools]
    else:
      new = pools[0].features(self.teacher, kind)
      ids = pools[0].keys
    if axis is None:
      scores = K.score(params,
                       scfg,
                       pf,
                       pm,
                       py,
                       ymask_k,
                       new,
                       np.ones(new.shape[:-1], bool),
                       kind=cfg.acquisition,
                       key=k_score,
                       per_kernel=cfg.pool_per_kernel,
                       ahead=self._ahead)
      picks = select_batch(np.asarray(scores), ids, exclude=seen_keys)
    else:
      picks = self._pareto_picks(params, pf, pm, py, ymask_k, new, pools, ids,
                                 seen_keys, axis)
    self._compile_next(params, len(hist), size, pf, ymask_k, new, k_score,
                       None if cfg.shared_lstm else (sub, subsets))
    out = [pools[k if cfg.pool_per_kernel else 0].arch(m) for k, m in picks]
    if len(out) < n:  # kernels left with nothing new: fill from the prior
      out += self._winnable(self.draw,
                            rng,
                            n - len(out),
                            exclude=seen | set(out))
    return out

  def winnable(self) -> Constraints:
    """The searcher's constraints, with skip_hopeless under the reward
    objective also a parameter limit below which alone a child could beat
    the best record b at validation accuracy 1: its reward is c(2 - c)
    times its accuracy over the teacher's, so it needs c(2 - c) >
    c_b(2 - c_b) acc_b, i.e. params < teacher params * sqrt(1 - that)."""
    cons = self.constraints
    if not self.config.skip_hopeless or cons.objective != 'reward':
      return cons
    best = max(self.records, key=lambda r: r.reward, default=None)
    if best is None or not best.reward > 0:
      return cons
    tp = self.teacher.num_params
    c = 1.0 - best.params / tp
    bound = c * (2.0 - c) * best.val_acc
    limit = math.ceil(tp * math.sqrt(max(0.0, 1.0 - bound))) - 1
    if limit < 1:
      return cons
    if cons.max_params is not None:
      limit = min(limit, cons.max_params)
    return dataclasses.replace(cons, max_params=limit)

  def front_parents(self, k: int) -> list[Arch]:
    """Up to k members of the accuracy-size front, spread along it: the
    parents of mutations under a pareto objective."""
    axis = self.constraints.pareto_axis or 'params'
    recs = self.records
    idx = pareto.spread([getattr(r, axis) for r in recs],
                        [r.val_acc for r in recs], k)
    return [recs[i].arch for i in idx]

  def _pareto_picks(self, params, pf, pm, py, ymask_k, new, pools, ids,
                    seen_keys, axis: str) -> list[tuple[int, int]]:
    cfg = self.config
    mean, std = K.posteriors(params,
                             cfg.surrogate,
                             pf,
                             pm,
                             py,
                             ymask_k,
                             new,
                             np.ones(new.shape[:-1], bool),
                             per_kernel=cfg.pool_per_kernel,
                             ahead=self._ahead)
    ref = float(
        getattr(self.teacher, 'num_params' if axis == 'params' else 'flops'))
    sizes = np.stack([p.sizes(axis) for p in pools]) / ref
    recs = self.records
    return pareto.select_batch(np.asarray(mean),
                               np.asarray(std),
                               sizes if cfg.pool_per_kernel else sizes[0],
                               ids, [getattr(r, axis) / ref for r in recs],
                               [r.val_acc for r in recs],
                               exclude=seen_keys)

  def _compile_next(self, params, n: int, size: int, pf, ymask_k, new, key,
                    faithful) -> None:
    """Compiles, in the background, the fit and scoring programs of the
    next ask when its history (n points now) crosses into a new bucket."""
    if not self.compile_ahead:
      return
    cfg, scfg = self.config, self.config.surrogate
    f32, b = np.float32, np.bool_
    grown = n + self._ask_size
    nxt = K.bucket_size(grown)
    hist = (np.zeros((nxt,) + pf.shape[1:],
                     f32), np.zeros((nxt,) + pf.shape[1:2], b),
            np.zeros(nxt, f32), np.zeros((ymask_k.shape[0], nxt), b))
    if faithful is not None:
      (sub_feats, sub_fmask, _, _), subsets = faithful
      k, s_now = sub_feats.shape[:2]
      # The largest subset grows by about half of what the history gains.
      s_next = K.bucket_size(
          int(subsets.sum(1).max()) + -(-self._ask_size // 2))
      if s_next > s_now:
        self._ahead.warm(K._fit_many_jit,
                         K.FIT_MANY_STATIC,
                         params,
                         scfg,
                         np.zeros((k, s_next) + sub_feats.shape[2:], f32),
                         np.zeros((k, s_next) + sub_fmask.shape[2:], b),
                         np.zeros((k, s_next), f32),
                         np.zeros((k, s_next), b),
                         per_kernel=True)
    if nxt == size:
      return
    if faithful is None:
      self._ahead.warm(K._fit_shared_jit, K.FIT_STATIC, params, scfg, *hist)
    if self.constraints.pareto_axis:
      self._ahead.warm(K._posteriors_jit,
                       K.POSTERIORS_STATIC,
                       params,
                       scfg,
                       *hist,
                       new,
                       np.ones(new.shape[:-1], b),
                       per_kernel=cfg.pool_per_kernel)
      return
    self._ahead.warm(K._score_jit,
                     K.SCORE_STATIC,
                     params,
                     scfg,
                     *hist,
                     new,
                     np.ones(new.shape[:-1], b),
                     kind=cfg.acquisition,
                     key=key,
                     beta=2.0,
                     per_kernel=cfg.pool_per_kernel)

  def fitted_embedding(self) -> Any:
    """The last fitted LSTM parameters (with independent kernels, the one
    whose objective was best), or None before the first fit."""
    if self.params is None:
      return None
    if self.config.shared_lstm:
      return self.params['lstm']
    best = int(np.argmax(np.atleast_1d(self.last_fit.get('objective', 0.0))))
    return jax.tree_util.tree_map(lambda a: a[best], self.params['lstm'])

  # ---- state ---------------------------------------------------------------

  def _arrays(self) -> Any:
    return None if self.params is None else {'surrogate': self.params}

  def _load_arrays(self, arrays: Any) -> None:
    self.params = None if not arrays else jax.tree_util.tree_map(
        jnp.asarray, arrays['surrogate'])


def _num_kernels(params: Any) -> int:
  return jax.tree_util.tree_leaves(params['gp'])[0].shape[0]
