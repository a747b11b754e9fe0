"""Programs compiled ahead: a hit runs without a new compile, and a search
crossing a history bucket finds its fit and scoring programs compiled."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esnac_jax.arch import SamplerConfig
from esnac_jax.search import ESNACConfig, Result, make_searcher, reward
from esnac_jax.surrogate import SurrogateConfig
from esnac_jax.surrogate import kernel as K
from esnac_jax.surrogate.ahead import Ahead
from conftest import tiny_teacher


@functools.partial(jax.jit, static_argnames=('scale',))
def _prog(x, scale, shift=0.0):
  return jnp.tanh(x @ x.T).sum() * scale + shift


def test_a_warmed_shape_runs_the_compiled_executable():
  ahead = Ahead()
  x = np.ones((5, 3), np.float32)
  want = float(_prog(x, 2, shift=1.0))
  before = _prog._cache_size()
  ahead.warm(_prog, ('scale',), np.zeros((7, 3), np.float32), 2, shift=1.0)
  ahead.wait()
  y = np.ones((7, 3), np.float32)
  got = ahead.call(_prog, ('scale',), y, 2, shift=1.0)
  assert ahead.compiled == 1 and ahead.hits == 1
  assert _prog._cache_size() == before  # the jitted path compiled nothing
  assert float(got) == pytest.approx(float(_prog(y, 2, shift=1.0)))
  # Another static value or shape is not a hit: the jitted function runs.
  assert float(ahead.call(_prog, ('scale',), x, 2, shift=1.0)) == want
  ahead.call(_prog, ('scale',), y, 3, shift=1.0)
  assert ahead.hits == 1


@pytest.mark.parametrize(
    'shared', [True, pytest.param(False, marks=pytest.mark.slow)],
    ids=['shared', 'faithful'])
def test_a_search_crossing_a_bucket_finds_its_programs_compiled(shared):
  t = tiny_teacher('resnet18')
  scfg = SurrogateConfig(hidden=8, num_layers=1, max_steps=3)
  if shared:
    cfg = ESNACConfig(surrogate=scfg,
                      pool_size=32,
                      init_random=0,
                      random_frac=0.0)
  else:
    cfg = ESNACConfig.faithful(surrogate=SurrogateConfig.faithful(hidden=8,
                                                                  num_layers=1,
                                                                  max_steps=3),
                               pool_size=16)
  s = make_searcher('esnac',
                    t,
                    SamplerConfig(),
                    0,
                    config=cfg,
                    compile_ahead=True)

  def tell(archs):
    s.tell(archs, [
        Result(0.5, reward(0.5, 0.9, a.num_params, t.num_params)) for a in archs
    ])

  tell(s.draw(np.random.default_rng(0), 28))
  tell(s.ask(4))  # history 29 (+ the teacher): the next ask crosses 32
  s._ahead.wait()
  # The fit (shared) and the scoring program; the faithful preset's
  # fits see Bernoulli(1/2) subsets, which cross their bucket later.
  assert s._ahead.compiled >= (2 if shared else 1)
  fit = K._fit_shared_jit if shared else K._fit_many_jit
  sizes = (fit._cache_size(), K._score_jit._cache_size())
  hits = s._ahead.hits
  tell(s.ask(4))
  assert s._ahead.hits >= hits + (2 if shared else 1)
  assert K._score_jit._cache_size() == sizes[1]
  if shared:
    assert fit._cache_size() == sizes[0]
