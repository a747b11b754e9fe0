"""The kernel API: embedding, joint fitting, K kernels, scoring, selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from esnac_jax import surrogate as S
from esnac_jax.surrogate import kernel
from esnac_jax.arch import batch_features, compression_ratio, get_teacher, sample

SMALL = S.SurrogateConfig(hidden=16, num_layers=1, max_steps=30)


def _seqs(n, length=9, f=5, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, length, f)).astype(np.float32),
          np.ones((n, length), bool))


def test_original_lstm_size_and_unit_norm():
  cfg = S.SurrogateConfig.faithful()
  p = S.init(jax.random.key(0), cfg, 272)
  n = sum(x.size for x in jax.tree_util.tree_leaves(p['lstm']))
  assert n == 471_040  # PyTorch nn.LSTM(272, 64, 4, bidirectional=True)
  x, m = _seqs(3, f=272)
  e = S.embed(p, cfg, x, m)
  assert e.shape == (3, 128)
  np.testing.assert_allclose(jnp.linalg.norm(e, axis=-1), 1.0, rtol=1e-5)


def test_mask_handles_shorter_sequences():
  p = S.init(jax.random.key(1), SMALL, 5)
  x, m = _seqs(2, length=6)
  short = S.embed(p, SMALL, x[:, :4], m[:, :4])
  padded = x.copy()
  padded[:, 4:] = 99.0  # garbage behind the mask
  mask = m.copy()
  mask[:, 4:] = False
  np.testing.assert_allclose(S.embed(p, SMALL, padded, mask), short, atol=1e-5)


def test_fit_improves_the_objective_and_stops():
  x, m = _seqs(12)
  y = np.linspace(0.1, 0.9, 12).astype(np.float32)
  ym = np.ones(12, bool)
  p0 = S.init(jax.random.key(2), SMALL, 5)
  before = S.objective(p0, SMALL, x, m, y, ym)
  p1, info = S.fit(p0, SMALL, x, m, y, ym)
  assert float(S.objective(p1, SMALL, x, m, y, ym)) > float(before)
  assert 6 <= int(info.steps) <= 30
  # Fewer than two points: no training, as the original.
  _, info = S.fit(p0, SMALL, x, m, y, np.arange(12) < 1)
  assert int(info.steps) == 0


def test_faithful_preset_keeps_hypers_fixed():
  cfg = S.SurrogateConfig.faithful(hidden=16, num_layers=1, max_steps=10)
  assert cfg.objective == 'loo' and not cfg.normalize_y
  x, m = _seqs(8)
  y = np.linspace(0, 1, 8).astype(np.float32)
  p, _ = S.fit(S.init(jax.random.key(0), cfg, 5), cfg, x, m, y,
               np.ones(8, bool))
  h = S.hypers(p, cfg)
  assert float(h.ls2) == pytest.approx(0.01) and float(
      h.noise) == pytest.approx(0.05)


def test_many_kernels_one_compile_per_bucket():
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=5)
  k = 3
  p = S.init(jax.random.key(0), cfg, 5, k)
  before = kernel._fit_many_jit._cache_size()
  rng = np.random.default_rng(0)
  for n in (5, 17, 32):
    x, m = _seqs(n, seed=n)
    y = rng.random(n).astype(np.float32)
    size = S.bucket_size(n)
    assert size == 32
    xp, mp, yp, ym = S.pad_history(x, m, y, size)
    subsets = np.stack([ym & (rng.random(size) < 0.5) for _ in range(k)])
    out, info = S.fit_many(p, cfg, xp, mp, yp, subsets)
    assert info.steps.shape == (k,)
    assert all(np.isfinite(l).all() for l in jax.tree_util.tree_leaves(out))
  assert kernel._fit_many_jit._cache_size() - before == 1
  assert S.bucket_size(17) == 32 and S.bucket_size(161) == 192


@pytest.mark.slow
def test_vmapped_kernels_equal_separate_fits():
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=8)
  x, m = _seqs(10)
  y = np.linspace(0, 1, 10).astype(np.float32)
  p = S.init(jax.random.key(3), cfg, 5, 2)
  subsets = np.array([[1, 0] * 5, [1, 1, 1, 0, 0] * 2], bool)
  many, info = S.fit_many(p, cfg, x, m, y, subsets)
  for i in range(2):
    one, inf1 = S.fit(jax.tree_util.tree_map(lambda a: a[i], p), cfg, x, m, y,
                      subsets[i])
    assert int(inf1.steps) == int(info.steps[i])
    # Adam normalises near-zero gradients, so compare what the fit is for.
    mine = jax.tree_util.tree_map(lambda a: a[i], many)
    np.testing.assert_allclose(S.objective(mine, cfg, x, m, y, subsets[i]),
                               S.objective(one, cfg, x, m, y, subsets[i]),
                               rtol=1e-4)
    np.testing.assert_allclose(float(info.ll[i]), float(inf1.ll), rtol=1e-4)


@pytest.mark.slow
def test_score_shapes_and_acquisitions():
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=3)
  x, m = _seqs(8)
  y = np.linspace(0, 1, 8).astype(np.float32)
  p = S.init(jax.random.key(0), cfg, 5, 3)
  sub = np.ones((3, 8), bool)
  cx, cm = _seqs(20, seed=5)
  for kind in S.ACQUISITIONS:
    s = S.score(p, cfg, x, m, y, sub, cx, cm, kind=kind, key=jax.random.key(1))
    assert s.shape == (3, 20) and np.isfinite(s).all()
  own = np.stack([cx] * 3), np.stack([cm] * 3)
  s = S.score(p, cfg, x, m, y, sub, *own, per_kernel=True)
  np.testing.assert_allclose(s,
                             S.score(p, cfg, x, m, y, sub, cx, cm),
                             rtol=1e-5,
                             atol=1e-7)
  with pytest.raises(ValueError, match="unknown acquisition 'pi'"):
    S.score(p, cfg, x, m, y, sub, cx, cm, kind='pi')


@pytest.mark.parametrize('case', [
    pytest.param('one_point', marks=pytest.mark.slow),
    pytest.param('duplicates', marks=pytest.mark.slow), 'constant', 'zeros'
])
def test_degenerate_histories(case):
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=10)
  faithful = S.SurrogateConfig.faithful(hidden=8, num_layers=1, max_steps=10)
  x, m = _seqs(6)
  y = np.linspace(0.2, 0.8, 6).astype(np.float32)
  ym = np.ones(6, bool)
  if case == 'one_point':
    ym = np.arange(6) < 1
    y[0] = 0.0  # the teacher anchor alone, as at the original's step 1
  elif case == 'duplicates':
    x[3:] = x[:3]
  elif case == 'constant':
    y[:] = 0.5
  else:
    y[:] = 0.0
  cx, cm = _seqs(10, seed=9)
  for c in (cfg, faithful):
    p = S.init(jax.random.key(0), c, 5, 2)
    p, info = S.fit_many(p, c, x, m, y, np.stack([ym, ym]))
    assert all(np.isfinite(l).all() for l in jax.tree_util.tree_leaves(p))
    s = S.score(p, c, x, m, y, np.stack([ym, ym]), cx, cm)
    assert np.isfinite(s).all() and (np.asarray(s) >= 0).all()
    mean, var = S.posterior(jax.tree_util.tree_map(lambda a: a[0], p), c, x, m,
                            y, ym, cx, cm)
    assert np.isfinite(mean).all() and (np.asarray(var) > 0).all()
    if case == 'one_point' and c is faithful:
      # Only the teacher (y = 0): EI = sigma * phi(0), farthest wins.
      np.testing.assert_allclose(s[0], np.sqrt(var) * 0.3989423, rtol=1e-4)


def test_select_batch():
  scores = np.array([[0.9, 0.8, 0.1], [0.9, 0.2, 0.7], [0.1, 0.2, 0.3]])
  ids = ['a', 'b', 'c']
  assert S.select_batch(scores, ids) == [(0, 0), (1, 2), (2, 1)]
  assert S.select_batch(scores, ids, exclude={'a'}) == [(0, 1), (1, 2)]
  own = [['a', 'b', 'c'], ['a', 'x', 'y'], ['z', 'b', 'c']]
  assert S.select_batch(scores, own) == [(0, 0), (1, 2), (2, 2)]


def test_bad_config():
  with pytest.raises(ValueError, match="unknown surrogate objective 'elbo'"):
    S.SurrogateConfig(objective='elbo')
  with pytest.raises(ValueError, match='hidden must be >= 1'):
    S.SurrogateConfig(hidden=0)
  with pytest.raises(ValueError, match="unknown lstm_impl 'torch'"):
    S.SurrogateConfig(lstm_impl='torch')
  with pytest.raises(ValueError, match='does not fit'):
    S.pad_history(*_seqs(5), np.zeros(5), 4)


@pytest.mark.slow
def test_learned_embedding_ranks_better_than_untrained():
  """Reward is a known function of size and depth; fitting must learn it."""
  t = get_teacher('resnet18')
  rng = np.random.default_rng(0)
  archs = [sample(t, rng) for _ in range(140)]

  def reward(a):
    c = compression_ratio(a, t)
    removed = sum(l.kind == 'identity' for l in a.layers) / a.num_layers
    return c * (2 - c) * (1.0 - 0.5 * removed)

  y = np.array([reward(a) for a in archs], np.float32)
  x = batch_features(archs, t, 'normalized')
  m = np.ones(x.shape[:2], bool)
  n = 40
  cfg = S.SurrogateConfig(hidden=32, num_layers=1, lr=1e-2, max_steps=60)
  xs, ms, ys, ym = S.pad_history(x[:n], m[:n], y[:n], 64)

  def held_out_rho(p):
    mean, _ = S.posterior(p, cfg, xs, ms, ys, ym, x[n:], m[n:])
    return spearmanr(np.asarray(mean), y[n:]).statistic

  rho_fit, rho_init = [], []
  for seed in range(3):
    p0 = S.init(jax.random.key(seed), cfg, x.shape[-1])
    p1, _ = S.fit(p0, cfg, xs, ms, ys, ym)
    rho_init.append(held_out_rho(p0))
    rho_fit.append(held_out_rho(p1))
  assert np.mean(rho_fit) > 0.7
  assert np.mean(rho_fit) > np.mean(rho_init) + 0.1, (rho_fit, rho_init)


def test_compact_subsets_equal_masked_fit():
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=6)
  x, m = _seqs(12)
  y = np.linspace(0, 1, 12).astype(np.float32)
  p = S.init(jax.random.key(4), cfg, 5, 2)
  sub = np.array([[1, 0, 1] * 4, [0, 1, 1] * 4], bool)
  masked, i1 = S.fit_many(p, cfg, x, m, y, sub)
  data = S.gather_subsets(x, m, y, sub)
  assert data[0].shape == (2, 32, 9, 5)
  compact, i2 = S.fit_many(p, cfg, *data, per_kernel=True)
  np.testing.assert_allclose(i1.ll, i2.ll, rtol=1e-4)
  cx, cm = _seqs(7, seed=2)
  np.testing.assert_allclose(S.score(masked, cfg, x, m, y, sub, cx, cm),
                             S.score(compact, cfg, x, m, y, sub, cx, cm),
                             rtol=1e-3,
                             atol=1e-6)


def test_shared_embedding_heads():
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=10)
  x, m = _seqs(12)
  y = np.linspace(0, 1, 12).astype(np.float32)
  sub = np.array([[1, 0, 1] * 4, [0, 1, 1] * 4, [1] * 12], bool)
  p = S.init_shared(jax.random.key(0), cfg, 5, 3)
  p1, info = S.fit_shared(p, cfg, x, m, y, sub)
  assert p1['gp']['log_ls2'].shape == (3,) and int(info.steps) >= 6
  cx, cm = _seqs(7, seed=2)
  s = S.score(p1, cfg, x, m, y, sub, cx, cm)
  assert s.shape == (3, 7) and np.isfinite(s).all()
  # Head k of the shared model is an ordinary kernel with that LSTM.
  one = {
      'lstm': p1['lstm'],
      'gp': jax.tree_util.tree_map(lambda a: a[2], p1['gp'])
  }
  mean, var = S.posterior(one, cfg, x, m, y, sub[2], cx, cm)
  best = y.max()
  np.testing.assert_allclose(s[2],
                             S.expected_improvement(mean, jnp.sqrt(var), best),
                             rtol=1e-4,
                             atol=1e-7)


@pytest.mark.slow
def test_flax_lstm_impl_fits_and_scores():
  """lstm_impl='flax': the kernel's checks read its parameter layout, both
  the shared and the per-kernel fits run and score."""
  cfg = S.SurrogateConfig(hidden=8,
                          num_layers=1,
                          max_steps=10,
                          lstm_impl='flax')
  x, m = _seqs(12)
  y = np.linspace(0, 1, 12).astype(np.float32)
  sub = np.array([[1, 0, 1] * 4, [0, 1, 1] * 4], bool)
  cx, cm = _seqs(5, seed=2)
  shared, info = S.fit_shared(S.init_shared(jax.random.key(0), cfg, 5, 2), cfg,
                              x, m, y, sub)
  assert int(info.steps) >= 6
  many, _ = S.fit_many(S.init(jax.random.key(0), cfg, 5, 2), cfg, x, m, y, sub)
  for p in (shared, many):
    s = S.score(p, cfg, x, m, y, sub, cx, cm)
    assert s.shape == (2, 5) and np.isfinite(s).all()
  with pytest.raises(ValueError, match='initialised for 5'):
    S.fit_shared(shared, cfg, x[..., :4], m, y, sub)


@pytest.mark.slow
@pytest.mark.parametrize('objective', ['mll', 'loo'])
def test_gradients_through_the_lstm(objective):
  from jax.test_util import check_grads
  cfg = S.SurrogateConfig(hidden=3, num_layers=2, objective=objective)
  with jax.enable_x64(True):
    x, m = _seqs(5, length=4, f=3)
    m[1, 3:] = False
    p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                               S.init(jax.random.key(0), cfg, 3))
    y = np.linspace(0, 1, 5)

    def f(p):
      return S.objective(p, cfg, x.astype(np.float64), m, y, np.ones(5, bool))

    check_grads(f, (p,), order=1, modes=('rev',), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_loo_fit_of_eight_kernels_does_not_hang():
  """Regression: the LOO fit of K=8 kernels on 96 points deadlocked XLA:CPU
  (batched multi-column cho_solve). Run in a subprocess with a timeout."""
  import subprocess
  import sys
  code = '''
import jax, numpy as np
from esnac_jax import surrogate as S
from esnac_jax.surrogate import kernel
cfg = S.SurrogateConfig.faithful(hidden=8, num_layers=1, max_steps=2)
p = S.init(jax.random.key(0), cfg, 16, 8)
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 96, 108, 16)).astype(np.float32)
out, info = S.fit_many(p, cfg, x, np.ones((8, 96, 108), bool),
                       rng.random((8, 96)).astype(np.float32),
                       np.ones((8, 96), bool), per_kernel=True)
print('steps', np.asarray(info.steps).tolist())
'''
  res = subprocess.run([sys.executable, '-c', code],
                       capture_output=True,
                       text=True,
                       timeout=300)
  assert res.returncode == 0, res.stderr[-2000:]
  assert 'steps [2, 2, 2, 2, 2, 2, 2, 2]' in res.stdout


# ---- degenerate input ------------------------------------------------------


def test_an_empty_subset_scores_finite_ei_and_every_kernel_picks():
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=3)
  x, m = _seqs(8)
  y = np.linspace(0.2, 0.9, 8).astype(np.float32)
  p = S.init_shared(jax.random.key(0), cfg, 5, 3)
  sub = np.ones((3, 8), bool)
  sub[1] = False  # kernel 1 sees no history at all
  cx, cm = _seqs(20, seed=5)
  s = np.asarray(S.score(p, cfg, x, m, y, sub, cx, cm))
  assert np.isfinite(s).all()
  # Without history the incumbent is the prior mean: EI is a half-normal
  # mean, the same for every candidate (the prior does not tell them apart).
  assert s[1] == pytest.approx(np.full(20, s[1, 0]), rel=1e-5)
  assert s[1, 0] > 0
  picks = S.select_batch(s, [f'c{i}' for i in range(20)])
  assert len(picks) == 3 and len({m for _, m in picks}) == 3


def test_near_constant_rewards_keep_their_scale():
  """Twelve copies of 0.7: float32 rounding gives a spread of ~1e-7, which
  must not be blown up to unit scale."""
  x, m = _seqs(12)
  y = np.full(12, 0.7, np.float32)
  ym = np.ones(12, bool)
  p = S.init(jax.random.key(0), SMALL, 5)
  cx, cm = _seqs(4, seed=3)
  mean, var = S.posterior(p, SMALL, x, m, y, ym, cx, cm)
  np.testing.assert_allclose(mean, 0.7, atol=1e-3)
  assert np.all(np.asarray(var) > 1e-4)  # was ~1e-18 with an absolute cut
  yn, mu, sd = kernel._standardise(jnp.asarray(y), jnp.asarray(ym), SMALL)
  assert float(sd) == 1.0 and np.all(np.abs(np.asarray(yn)) < 1e-5)
  # A real spread well below 1 is still standardised.
  y2 = (0.7 + 1e-3 * np.arange(12)).astype(np.float32)
  _, _, sd2 = kernel._standardise(jnp.asarray(y2), jnp.asarray(ym), SMALL)
  assert float(sd2) == pytest.approx(np.std(y2), rel=1e-3)


def test_rewards_a_fixed_scale_gp_cannot_reach_are_refused():
  cfg = S.SurrogateConfig.faithful(hidden=8, num_layers=1, max_steps=3)
  x, m = _seqs(6)
  y = np.linspace(1e6, 2e6, 6).astype(np.float32)
  p = S.init(jax.random.key(0), cfg, 5)
  with pytest.raises(ValueError, match='normalize_y=False'):
    S.fit(p, cfg, x, m, y, np.ones(6, bool))
  with pytest.raises(ValueError, match='NaN or infinite'):
    S.fit(p, SMALL, x, m, np.where(np.arange(6) == 2, np.nan, 0.5),
          np.ones(6, bool))
  # NaN behind the mask (padding) is fine.
  S.fit(S.init(jax.random.key(0), SMALL, 5), SMALL, x, m,
        np.where(np.arange(6) == 5, np.nan, 0.5).astype(np.float32),
        np.arange(6) < 5)


@pytest.mark.parametrize('change,message', [
    (dict(feats=np.zeros((6, 9), np.float32)), r'feats must be \[N, L, F\]'),
    (dict(feats=np.zeros((6, 9, 4), np.float32)), 'initialised for 5'),
    (dict(fmask=np.ones((6, 8), bool)), 'fmask must be'),
    (dict(y=np.zeros(5, np.float32)), 'y must be'),
    (dict(ymask=np.ones(7, bool)), 'ymask must be'),
    (dict(new_feats=np.zeros((4, 9, 3), np.float32)), 'new_feats must be'),
    (dict(new_fmask=np.ones((4, 2), bool)), 'new_fmask must be'),
])
def test_shapes_that_do_not_match_name_the_argument(change, message):
  x, m = _seqs(6)
  cx, cm = _seqs(4, seed=1)
  args = dict(feats=x,
              fmask=m,
              y=np.zeros(6, np.float32),
              ymask=np.ones(6, bool),
              new_feats=cx,
              new_fmask=cm)
  args.update(change)
  p = S.init(jax.random.key(0), SMALL, 5)
  with pytest.raises(ValueError, match=message):
    S.posterior(p, SMALL, args['feats'], args['fmask'], args['y'],
                args['ymask'], args['new_feats'], args['new_fmask'])


def test_kernel_count_must_match_the_subsets():
  x, m = _seqs(6)
  p = S.init(jax.random.key(0), SMALL, 5, 3)
  with pytest.raises(ValueError, match='2 kernel rows but params hold'):
    S.fit_many(p, SMALL, x, m, np.zeros(6, np.float32), np.ones((2, 6), bool))


def test_select_batch_ranks_nan_last_and_checks_shapes():
  s = np.array([[np.nan, 1.0, np.nan], [np.nan, np.nan, np.nan]])
  assert S.select_batch(s, ['a', 'b', 'c']) == [(0, 1), (1, 0)]
  with pytest.raises(ValueError, match=r'scores must be \[K, M\]'):
    S.select_batch(np.zeros(3), ['a', 'b', 'c'])
  with pytest.raises(ValueError, match='ids must hold'):
    S.select_batch(np.zeros((2, 3)), ['a', 'b'])


@pytest.mark.parametrize('shared',
                         [pytest.param(False, marks=pytest.mark.slow), True])
def test_posteriors_are_each_kernels_posterior_and_give_its_ei(shared):
  """posteriors() is kernel k's own posterior (its GP head, its subset), in
  reward units, and EI computed from it equals score()'s."""
  cfg = S.SurrogateConfig(hidden=8, num_layers=1, max_steps=3)
  x, m = _seqs(10)
  y = np.linspace(0.2, 0.9, 10).astype(np.float32)
  sub = np.array([[1, 0] * 5, [0, 1] * 5, [1] * 10], bool)
  init = S.init_shared if shared else S.init
  p = init(jax.random.key(3), cfg, 5, 3)
  cx, cm = _seqs(6, seed=4)
  mean, std = S.posteriors(p, cfg, x, m, y, sub, cx, cm)
  assert mean.shape == std.shape == (3, 6)
  for k in range(3):
    one = jax.tree_util.tree_map(lambda a: a[k], p)
    if shared:
      one = {
          'lstm': p['lstm'],
          'gp': jax.tree_util.tree_map(lambda a: a[k], p['gp'])
      }
    mk, vk = S.posterior(one, cfg, x, m, y, sub[k], cx, cm)
    np.testing.assert_allclose(mean[k], mk, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(std[k], np.sqrt(vk), rtol=1e-4, atol=1e-6)
  best = np.array([y[s].max() for s in sub])
  ei = S.expected_improvement(mean, std, best[:, None])
  np.testing.assert_allclose(S.score(p, cfg, x, m, y, sub, cx, cm),
                             ei,
                             rtol=1e-4,
                             atol=1e-7)
  own = np.stack([cx] * 3), np.stack([cm] * 3)
  np.testing.assert_allclose(S.posteriors(p,
                                          cfg,
                                          x,
                                          m,
                                          y,
                                          sub,
                                          *own,
                                          per_kernel=True)[0],
                             mean,
                             rtol=1e-5,
                             atol=1e-7)
