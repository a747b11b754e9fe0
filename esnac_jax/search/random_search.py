"""Random search: the ESNAC prior sampler with no surrogate."""

from __future__ import annotations

import jax
import numpy as np

from esnac_jax.arch import Arch
from esnac_jax.search.base import Searcher


class RandomSearcher(Searcher):
  name = 'random'

  def _ask(self, n: int, rng: np.random.Generator,
           key: jax.Array) -> list[Arch]:
    del key
    return self.draw(rng, n, exclude=self.seen)
