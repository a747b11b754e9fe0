"""The searcher library: searchers behind one ask/tell interface, the
reward, records. Depends only on esnac_jax.arch and esnac_jax.surrogate."""

from esnac_jax.arch import Arch, SamplerConfig
from esnac_jax.search.base import Searcher
from esnac_jax.search.esnac import ESNACConfig, ESNACSearcher
from esnac_jax.search.evolution import EvolutionSearcher
from esnac_jax.search.n2n import N2NConfig, N2NSearcher
from esnac_jax.search.random_search import RandomSearcher
from esnac_jax.search.record import Record, Result
from esnac_jax.search.reward import Constraints, reward

SEARCHERS = {
    'esnac': ESNACSearcher,
    'random': RandomSearcher,
    'evolution': EvolutionSearcher,
    'n2n': N2NSearcher
}


def make_searcher(name: str,
                  teacher: Arch,
                  sampler: SamplerConfig,
                  seed: int,
                  constraints: Constraints = Constraints(),
                  **kwargs) -> Searcher:
  """A searcher by name; kwargs go to its constructor."""
  if name not in SEARCHERS:
    raise ValueError(f'unknown searcher {name!r}; known searchers: '
                     f'{", ".join(SEARCHERS)}')
  return SEARCHERS[name](teacher, sampler, seed, constraints, **kwargs)


__all__ = [
    'SEARCHERS', 'Constraints', 'ESNACConfig', 'ESNACSearcher',
    'EvolutionSearcher', 'N2NConfig', 'N2NSearcher', 'RandomSearcher', 'Record',
    'Result', 'Searcher', 'make_searcher', 'reward'
]
