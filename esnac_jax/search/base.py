"""The ask/tell interface every searcher implements, and what they share.

  searcher.ask(n)              -> n distinct new Archs to evaluate
  searcher.tell(archs, results)   their Results (accuracy and reward)
  searcher.state()             -> one serialisable value (JSON-able dict,
                                   plus an optional array pytree under
                                   'arrays')
  Searcher.from_state(...)     rebuilds it exactly

All randomness of the n-th `ask` comes from (seed, n): a resumed searcher
proposes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import abc
from typing import Any, Hashable, Iterator, Sequence

import jax
import numpy as np

from esnac_jax.arch import Arch, SamplerConfig, encoding, mutate, sample
from esnac_jax.arch.encoding import Encoder, Pool
from esnac_jax.search.candidates import Candidates
from esnac_jax.search.record import Record, Result, ranked
from esnac_jax.search.reward import Constraints

MAX_DRAWS_PER_CANDIDATE = 50
# Tries in a row without a new candidate after which a best-effort draw
# (a pool) stops: the search space has run dry.
MAX_MISSES = 2000


class Searcher(abc.ABC):
  """History, deterministic randomness and the constraints filter."""

  name = 'base'

  def __init__(self,
               teacher: Arch,
               sampler: SamplerConfig,
               seed: int,
               constraints: Constraints = Constraints()):
    self.teacher = teacher
    self.sampler = sampler
    self.seed = int(seed)
    self.constraints = constraints
    self.records: list[Record] = []
    self.asks = 0  # how many times `ask` ran: the RNG counter
    self.pending_step = 0  # the step a batch being asked belongs to

  # ---- the interface -------------------------------------------------------

  def ask(self, n: int) -> list[Arch]:
    if n < 1:
      raise ValueError(f'ask needs n >= 1, got {n}')
    rng = np.random.default_rng([self.seed, self.asks])
    key = jax.random.fold_in(jax.random.key(self.seed), self.asks)
    out = self._ask(n, rng, key)
    self.asks += 1
    return out

  def tell(self,
           archs: Sequence[Arch],
           results: Sequence[Result],
           step: int | None = None) -> list[Record]:
    if len(archs) != len(results):
      raise ValueError(f'tell got {len(archs)} archs and {len(results)} '
                       'results')
    step = self.asks if step is None else step
    new = [
        Record(a, a.num_params, a.flops,
               r.val_acc, r.reward, step, r.best_epoch, r.seconds, r.epochs,
               tuple(r.curve)) for a, r in zip(archs, results)
    ]
    self.records.extend(new)
    self._tell(new)
    return new

  def state(self) -> dict[str, Any]:
    return {
        'searcher': self.name,
        'seed': self.seed,
        'asks': self.asks,
        'records': [r.to_dict() for r in self.records],
        'arrays': self._arrays()
    }

  def load_state(self, state: dict[str, Any]) -> None:
    if state['searcher'] != self.name:
      raise ValueError(f"the saved search state is from searcher "
                       f"{state['searcher']!r}, not {self.name!r}")
    self.seed = int(state['seed'])
    self.asks = int(state['asks'])
    self.records = [Record.from_dict(d) for d in state['records']]
    self._load_arrays(state.get('arrays'))

  # ---- for subclasses ------------------------------------------------------

  @abc.abstractmethod
  def _ask(self, n: int, rng: np.random.Generator,
           key: jax.Array) -> list[Arch]:
    ...

  def _tell(self, new: list[Record]) -> None:
    del new

  def _arrays(self) -> Any:
    return None

  def _load_arrays(self, arrays: Any) -> None:
    del arrays

  # ---- helpers -------------------------------------------------------------

  @property
  def seen(self) -> set[Arch]:
    return {r.arch for r in self.records}

  def best(self, k: int = 1) -> list[Record]:
    """The k best records by reward (earliest first among ties)."""
    return [self.records[i] for i in ranked(self.records, k)]

  @property
  def encoder(self) -> Encoder | None:
    """The teacher's array encoding (None when unsupported): prior draws
    and their features then come without an Arch per child."""
    if not hasattr(self, '_encoder'):
      self._encoder = encoding.encoder(self.teacher, self.sampler.group_mode)
    return self._encoder

  def key(self, arch: Arch) -> Hashable:
    """The identity of `arch` among candidates (`Candidates.keys`)."""
    if self.encoder is None:
      return arch
    cache = self.__dict__.setdefault('_keys', {})
    if arch not in cache:
      cache[arch] = self.encoder.arch_key(arch)
    return cache[arch]

  def keys(self, archs) -> set[Hashable]:
    return {self.key(a) for a in archs}

  def draw(self,
           rng: np.random.Generator,
           n: int,
           parents: Sequence[Arch] = (),
           mutate_frac: float = 0.0,
           exclude: set[Arch] | frozenset = frozenset(),
           distinct: bool = True,
           at_least: int | None = None,
           constraints: Constraints | None = None) -> list[Arch]:
    """n candidates admitted by `constraints` (default: the searcher's)
    and not in `exclude`: a
    fraction `mutate_frac` are one-step mutations of random `parents`, the
    rest samples from the prior. Distinct unless `distinct=False` (the
    original drew its pools i.i.d.). A search space too small for n new
    ones gives what the tries found if that is `at_least` (default n),
    else a ValueError; once `at_least` are found, MAX_MISSES tries in a row
    without a new one end the search."""
    return self.candidates(rng, n, parents, mutate_frac, self.keys(exclude),
                           distinct, at_least, constraints).all_archs()

  def candidates(self,
                 rng: np.random.Generator,
                 n: int,
                 parents: Sequence[Arch] = (),
                 mutate_frac: float = 0.0,
                 exclude: set[Hashable] | frozenset = frozenset(),
                 distinct: bool = True,
                 at_least: int | None = None,
                 constraints: Constraints | None = None) -> Candidates:
    """As `draw`, with `exclude` given as keys (`key`), returned as a
    `Candidates` pool whose prior draws stay arrays when the teacher has an
    encoder."""
    cons = self.constraints if constraints is None else constraints
    archs: list[Arch] = []
    keys: list[Hashable] = []
    got: set[Hashable] = set()
    n_mut = int(round(n * mutate_frac)) if parents else 0
    enough = n if at_least is None else at_least
    budget = n * MAX_DRAWS_PER_CANDIDATE
    misses = 0

    def admit(k: Hashable, ok: bool) -> bool:
      nonlocal misses
      if not ok or k in exclude or (distinct and k in got):
        misses += 1
        return False
      misses = 0
      keys.append(k)
      got.add(k)
      return True

    def done() -> bool:
      return len(keys) == n or (len(keys) >= enough and misses >= MAX_MISSES)

    tries = 0
    enc = self.encoder
    parts = []

    def take(pool: Pool, ok: np.ndarray) -> None:
      if cons.max_params is not None:
        ok &= enc.num_params(pool) <= cons.max_params
      if cons.max_flops is not None:
        ok &= enc.flops(pool) <= cons.max_flops
      keep = []
      for i, k in enumerate(enc.keys(pool)):
        if admit(k, bool(ok[i])):
          keep.append(i)
        if done():
          break
      parts.append(pool.take(keep))

    def rounds(want: int) -> Iterator[int]:
      nonlocal tries
      while tries < budget and len(keys) < want and not done():
        m = min(budget - tries, max(64, 2 * (want - len(keys))))
        tries += m
        yield m

    rows = _encode(enc, parents) if parents else None
    if rows is not None:
      for m in rounds(n_mut):
        kids, changed = enc.mutate(
            rows.take(rng.integers(len(parents), size=m)), rng, self.sampler)
        take(kids, changed)
    else:
      while tries < budget and len(keys) < n_mut and not done():
        tries += 1
        parent = parents[rng.integers(len(parents))]
        try:
          a = mutate(parent, self.teacher, rng, self.sampler)
        except ValueError:
          continue
        if admit(self.key(a), cons.admits(a)):
          archs.append(a)
    if enc is None:
      while tries < budget and not done():
        tries += 1
        a = sample(self.teacher, rng, self.sampler)
        if admit(a, cons.admits(a)):
          archs.append(a)
    else:
      for m in rounds(n):
        take(enc.sample(rng, m, self.sampler), np.ones(m, bool))
    rows = Pool.concat(parts) if parts else None
    if len(keys) >= enough:
      return Candidates(archs, rows, enc, keys)
    raise ValueError(
        f'could draw only {len(keys)} of {n} admissible new candidates in '
        f'{budget} tries; the constraints ({cons}) or the search '
        'space are too tight')


def _encode(enc: Encoder | None, archs: Sequence[Arch]) -> Pool | None:
  """`archs` as rows when the encoder can mutate them, else None."""
  if enc is None or not enc.can_mutate:
    return None
  try:
    return enc.encode(archs)
  except ValueError:
    return None
