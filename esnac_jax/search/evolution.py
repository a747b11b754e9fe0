"""Regularised evolution (Real et al., 2019) with the mutation operator.

The population is the `population` most recent evaluations (ageing: the
oldest leaves first). Each child mutates the best of `tournament` members
drawn at random. Until the population is full, children come from the prior.
"""

from __future__ import annotations

import jax
import numpy as np

from esnac_jax.arch import Arch, SamplerConfig, mutate
from esnac_jax.search.base import Searcher
from esnac_jax.search.reward import Constraints


class EvolutionSearcher(Searcher):
  name = 'evolution'

  def __init__(self,
               teacher: Arch,
               sampler: SamplerConfig,
               seed: int,
               constraints: Constraints = Constraints(),
               population: int = 24,
               tournament: int = 6):
    super().__init__(teacher, sampler, seed, constraints)
    if population < 2 or not 1 <= tournament <= population:
      raise ValueError(f'evolution needs population >= 2 and 1 <= tournament '
                       f'<= population, got {population} and {tournament}')
    self.population = population
    self.tournament = tournament

  def _ask(self, n: int, rng: np.random.Generator,
           key: jax.Array) -> list[Arch]:
    del key
    seen = self.seen
    pop = self.records[-self.population:]
    if len(pop) < self.population:
      return self.draw(rng, n, exclude=seen)
    out: list[Arch] = []
    for _ in range(n * 50):
      if len(out) == n:
        break
      picks = rng.choice(len(pop), self.tournament, replace=False)
      parent = max((pop[i] for i in picks), key=lambda r: r.reward).arch
      try:
        child = mutate(parent, self.teacher, rng, self.sampler)
      except ValueError:
        continue
      if child not in seen and child not in out and \
          self.constraints.admits(child):
        out.append(child)
    if len(out) < n:  # a crowded neighbourhood: top up from the prior
      out += self.draw(rng, n - len(out), exclude=seen | set(out))
    return out
