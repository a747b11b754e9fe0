"""N2N (Ashok et al., ICLR 2018): two-stage policy-gradient compression,
behind the ask/tell interface, on the same reward.

Stage 1, layer removal: a bidirectional LSTM (2 layers, hidden 30) reads
the teacher's layers and gives each removable layer a keep/remove
probability; a rollout samples one Bernoulli per layer.
Stage 2, layer shrinkage: an autoregressive LSTM (2 layers, hidden 30)
walks the width groups of the best stage-1 architecture and picks, for
each, the fraction of channels to keep from N2N's lookup table, feeding
its previous choice back in.
Both are trained with REINFORCE against a baseline: the mean of all
earlier batches' mean rewards in that stage (N2N's run.py), with Adam at
N2N's rates (0.003 removal, 0.1 shrinkage). Unlike N2N's code, which
reinforced every action of a batch with the batch's mean reward, each
rollout is reinforced with its own reward, as the paper describes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from esnac_jax.arch import (Arch, SamplerConfig, features, remove_layers,
                            removable_layers, shrink, shrunk_width,
                            width_groups)
from esnac_jax.search.base import Searcher
from esnac_jax.search.record import Record
from esnac_jax.search.reward import Constraints
from esnac_jax.surrogate.embedding import BiLSTMEmbedding

LOOKUP = (0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclasses.dataclass(frozen=True)
class N2NConfig:
  stage1_asks: int = 10  # asks (search steps) spent on removal
  hidden: int = 30
  num_layers: int = 2
  removal_lr: float = 0.003
  shrink_lr: float = 0.1

  def __post_init__(self):
    if self.stage1_asks < 1 or self.hidden < 1 or self.num_layers < 1:
      raise ValueError('N2N needs stage1_asks, hidden and num_layers >= 1')


class RemovalPolicy(nn.Module):
  """Bidirectional LSTM over layer features -> keep logit per layer."""
  hidden: int
  num_layers: int

  @nn.compact
  def __call__(self, x):  # [L, F] -> [L]
    # The surrogate's BiLSTM, its per-layer states instead of the pooled
    # embedding.
    h = BiLSTMEmbedding(self.hidden, self.num_layers, pool=False,
                        name='lstm')(x[None], jnp.ones((1, x.shape[0]), bool))
    # Start close to "keep": N2N's removal starts from the whole teacher.
    return nn.Dense(1, bias_init=nn.initializers.constant(1.0))(h)[0, :, 0]


class ShrinkPolicy(nn.Module):
  """Autoregressive LSTM over width groups -> a lookup choice per group."""
  hidden: int
  num_layers: int

  def setup(self):
    self.cells = [
        nn.OptimizedLSTMCell(self.hidden, name=f'cell{i}')
        for i in range(self.num_layers)
    ]
    self.head = nn.Dense(len(LOOKUP))

  def __call__(self, x, key=None, actions=None):
    """Samples (key) or scores given actions; returns (actions, log-prob)."""
    n = x.shape[0]
    carry = [
        c.initialize_carry(jax.random.key(0), (1, x.shape[-1] + len(LOOKUP)))
        for c in self.cells
    ]
    prev = jnp.zeros(len(LOOKUP))
    keys = (jax.random.split(key, n) if key is not None else [None] * n)
    out, logp = [], 0.0
    for g in range(n):  # a handful of groups: unrolled
      h = jnp.concatenate([x[g], prev])[None]
      new = []
      for c, st in zip(self.cells, carry):
        st, h = c(st, h)
        new.append(st)
      carry = new
      logits = jax.nn.log_softmax(self.head(h)[0])
      a = (jax.random.categorical(keys[g], logits)
           if actions is None else actions[g])
      logp = logp + logits[a]
      out.append(a)
      prev = jax.nn.one_hot(a, len(LOOKUP))
    return jnp.stack(out), logp


class N2NSearcher(Searcher):
  name = 'n2n'

  def __init__(self,
               teacher: Arch,
               sampler: SamplerConfig,
               seed: int,
               constraints: Constraints = Constraints(),
               config: N2NConfig = N2NConfig()):
    super().__init__(teacher, sampler, seed, constraints)
    self.config = config
    self._removable = np.array(removable_layers(teacher))
    self._feats = jnp.asarray(features(teacher, teacher, 'normalized'))
    key = jax.random.key(seed)
    self._rem = RemovalPolicy(config.hidden, config.num_layers)
    self._shr = ShrinkPolicy(config.hidden, config.num_layers)
    self._rem_tx = optax.adam(config.removal_lr)
    self._shr_tx = optax.adam(config.shrink_lr)
    rem_params = self._rem.init(key, self._feats)
    self.policy: dict[str, Any] = {
        'removal': rem_params,
        'removal_opt': self._rem_tx.init(rem_params),
        'shrink': None,
        'shrink_opt': None,
        'baseline': np.zeros(2, np.float64),  # per stage: sum of batch means
        'batches': np.zeros(2, np.int64)
    }  # per stage: batches seen
    self._pending: dict[Arch, tuple[int, np.ndarray]] = {}
    self._base: Arch | None = None
    self._rem_grad = jax.jit(jax.grad(self._removal_objective))
    self._shr_sample = jax.jit(lambda p, x, k: self._shr.apply(p, x, key=k))
    self._shr_grad = jax.jit(jax.grad(self._shrink_objective))

  # ---- stage 1 -------------------------------------------------------------

  def _removal_objective(self, params, acts, adv):
    """-sum_i adv_i log pi(acts_i) over removable layers."""
    logit = self._rem.apply(params, self._feats)[self._removable]
    logp = jnp.sum(jnp.where(acts, jax.nn.log_sigmoid(logit),
                             jax.nn.log_sigmoid(-logit)),
                   axis=-1)
    return -jnp.mean(adv * logp)

  def _removal_arch(self, keep: np.ndarray) -> Arch:
    return remove_layers(self.teacher, self.teacher,
                         self._removable[~keep].tolist())

  # ---- stage 2 -------------------------------------------------------------

  def _group_features(self, arch: Arch) -> jnp.ndarray:
    groups = width_groups(arch, self.teacher, self.sampler.group_mode)
    n = len(groups)
    return jnp.asarray(
        [[np.log2(g.teacher_width) / 10, i / max(n - 1, 1),
          float(i == 0)] for i, g in enumerate(groups)], jnp.float32)

  def _shrink_objective(self, params, x, acts, adv):
    logp = jax.vmap(lambda a: self._shr.apply(params, x, actions=a)[1])(acts)
    return -jnp.mean(adv * logp)

  def _shrunk_arch(self, base: Arch, acts: np.ndarray) -> Arch:
    groups = width_groups(base, self.teacher, self.sampler.group_mode)
    return shrink(base, self.teacher,
                  [(g, shrunk_width(g, 1.0 - LOOKUP[int(a)]))
                   for g, a in zip(groups, acts)])

  def _stage(self) -> int:
    return 0 if self.asks < self.config.stage1_asks or not self.records \
        else 1

  def _stage2_base(self) -> Arch:
    """The best stage-1 (removal only) architecture."""
    stage1 = [r for r in self.records if r.step <= self.config.stage1_asks]
    return max(stage1 or self.records, key=lambda r: r.reward).arch

  # ---- ask / tell ----------------------------------------------------------

  def _ask(self, n: int, rng: np.random.Generator,
           key: jax.Array) -> list[Arch]:
    stage = self._stage()
    seen = self.seen
    out: list[Arch] = []
    self._pending = {}
    if stage == 1:
      self._base = self._stage2_base()
      x = self._group_features(self._base)
      if self.policy['shrink'] is None:
        p = self._shr.init(jax.random.fold_in(key, 1), x, key=key)
        self.policy['shrink'] = p
        self.policy['shrink_opt'] = self._shr_tx.init(p)
    else:
      logit = self._rem.apply(self.policy['removal'], self._feats)
      p_keep = np.asarray(jax.nn.sigmoid(logit))[self._removable]
    for t in range(n * 50):
      if len(out) == n:
        break
      k = jax.random.fold_in(key, t)
      if stage == 0:
        acts = np.asarray(jax.random.uniform(k, p_keep.shape)) < p_keep
        arch = self._removal_arch(acts)
      else:
        acts, _ = self._shr_sample(self.policy['shrink'], x, k)
        acts = np.asarray(acts)
        arch = self._shrunk_arch(self._base, acts)
      if arch in seen or arch in self._pending or \
          not self.constraints.admits(arch):
        continue
      self._pending[arch] = (stage, acts)
      out.append(arch)
    if len(out) < n:  # the policy has collapsed, or the constraints bite
      out += self.draw(rng, n - len(out), exclude=seen | set(out))
    return out

  def _tell(self, new: list[Record]) -> None:
    used = [(r, self._pending[r.arch]) for r in new if r.arch in self._pending]
    if not used:
      return
    stage = used[0][1][0]
    rewards = np.array([r.reward for r, _ in used])
    count = self.policy['batches'][stage]
    b = self.policy['baseline'][stage] / count if count else rewards.mean()
    adv = jnp.asarray(rewards - b, jnp.float32)
    acts = np.stack([a for _, (_, a) in used])
    if stage == 0:
      g = self._rem_grad(self.policy['removal'], jnp.asarray(acts), adv)
      upd, self.policy['removal_opt'] = self._rem_tx.update(
          g, self.policy['removal_opt'])
      self.policy['removal'] = optax.apply_updates(self.policy['removal'], upd)
    else:
      x = self._group_features(self._base)
      g = self._shr_grad(self.policy['shrink'], x, jnp.asarray(acts), adv)
      upd, self.policy['shrink_opt'] = self._shr_tx.update(
          g, self.policy['shrink_opt'])
      self.policy['shrink'] = optax.apply_updates(self.policy['shrink'], upd)
    self.policy['baseline'][stage] += rewards.mean()
    self.policy['batches'][stage] += 1
    self._pending = {}

  # ---- state ---------------------------------------------------------------

  def _arrays(self) -> Any:
    """The policies, their optimiser states and the baselines, as numbered
    leaves (orbax keeps arrays, not optax's state classes)."""
    p = self.policy
    if p['shrink'] is None:
      p = {k: v for k, v in p.items() if k not in ('shrink', 'shrink_opt')}
    leaves = jax.tree_util.tree_leaves(jax.device_get(p))
    return {
        'has_shrink': np.asarray(self.policy['shrink'] is not None),
        'leaves': {
            str(i): np.asarray(v) for i, v in enumerate(leaves)
        }
    }

  def _load_arrays(self, arrays: Any) -> None:
    if not arrays:
      return
    template = dict(self.policy)
    if bool(arrays['has_shrink']):
      x = self._group_features(self._stage2_base())
      p = self._shr.init(jax.random.key(0), x, key=jax.random.key(0))
      template['shrink'], template['shrink_opt'] = p, self._shr_tx.init(p)
    else:
      template = {
          k: v for k, v in template.items() if k not in ('shrink', 'shrink_opt')
      }
    leaves, treedef = jax.tree_util.tree_flatten(template)
    saved = arrays['leaves']
    if len(saved) != len(leaves):
      raise ValueError(f'the saved N2N state has {len(saved)} arrays, this '
                       f'searcher {len(leaves)}: another N2N configuration?')
    new = [
        np.asarray(saved[str(i)]).astype(np.asarray(t).dtype).reshape(
            np.shape(t)) for i, t in enumerate(leaves)
    ]
    policy = jax.tree_util.tree_unflatten(treedef, new)
    policy.setdefault('shrink', None)
    policy.setdefault('shrink_opt', None)
    policy['baseline'] = np.array(policy['baseline'], np.float64)
    policy['batches'] = np.array(policy['batches'], np.int64)
    self.policy = policy
