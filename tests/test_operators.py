"""Compression operators and the random sampler: the property tests.

For every teacher, ESNAC_PROPERTY_N (default 500) random children and as
many mutations must be valid children of the teacher with the teacher's
layer count, exact parameter counts, and an unchanged JSON round trip. The
Flax side of the same property (build, forward pass, parameter count) is in
test_network.py.
"""

import numpy as np
import pytest

from conftest import env_int
from esnac_jax.arch import (Arch, SamplerConfig, add_skips, check_child,
                            compression_ratio, get_teacher, mutate,
                            remove_layers, removable_layers, restore_layer,
                            sample, skip_pairs, width_groups)
from esnac_jax.arch.widths import analyse

N = env_int('ESNAC_PROPERTY_N', 500)


def _params_from_spaces(arch, teacher):
  """Parameter count recomputed from the solved channel spaces."""
  sa = analyse(arch, teacher)
  total = 0
  for i, l in enumerate(arch.layers):
    cin = sa.space_width(sa.in_spaces[i])
    cout = sa.space_width(sa.out_spaces[i])
    if l.kind == 'conv':
      total += l.kernel**2 * cin // l.groups * cout + (cout if l.bias else 0)
    elif l.kind == 'linear':
      total += cin * cout + (cout if l.bias else 0)
    elif l.kind == 'bn':
      total += 2 * cout
  return total


def _check(arch, teacher):
  check_child(arch, teacher)
  assert arch.num_layers == teacher.num_layers
  assert arch.output_shape == teacher.output_shape
  assert Arch.from_json(arch.to_json()) == arch
  assert 0 < arch.num_params <= teacher.num_params
  assert _params_from_spaces(arch, teacher) == arch.num_params


@pytest.mark.parametrize('mode', ['by_width', 'fine'])
def test_random_children_and_mutations(teacher_name, mode):
  t = get_teacher(teacher_name)
  cfg = SamplerConfig(group_mode=mode)
  rng = np.random.default_rng(hash((teacher_name, mode)) % 2**32)
  n = N if mode == 'by_width' else max(1, N // 5)
  ratios = []
  for _ in range(n):
    child = sample(t, rng, cfg)
    _check(child, t)
    ratios.append(compression_ratio(child, t))
    m = mutate(child, t, rng, cfg)
    assert m != child
    _check(m, t)
  if mode == 'by_width' and n >= 100:
    # The prior is heavily compressed (esnac-method.md section 3.6).
    assert 0.5 < np.mean(ratios) < 0.95


def test_mutation_chain_stays_valid(teacher_name):
  t = get_teacher(teacher_name)
  rng = np.random.default_rng(7)
  a = t
  for _ in range(max(20, N // 10)):
    a = mutate(a, t, rng, SamplerConfig(group_mode='fine'))
    _check(a, t)


def test_removal_rate_follows_p1():
  t = get_teacher('resnet18')
  cfg = SamplerConfig(remove_probs=(0.3,), skip_probs=(0.0,))
  rng = np.random.default_rng(0)
  rem = removable_layers(t)
  fr = [
      np.mean([c.layers[i].kind == 'identity'
               for i in rem])
      for c in (sample(t, rng, cfg) for _ in range(200))
  ]
  assert abs(np.mean(fr) - 0.3) < 0.03
  assert len(rem) == 50  # esnac-method.md section 2.3


def test_skip_rate_follows_p3():
  t = get_teacher('vgg19')
  cfg = SamplerConfig(remove_probs=(0.0,),
                      shrink_range=(0.0, 0.0),
                      skip_probs=(0.05,))
  rng = np.random.default_rng(0)
  extra = [
      len(c.edges) - len(t.edges)
      for c in (sample(t, rng, cfg) for _ in range(100))
  ]
  new_pairs = len([p for p in skip_pairs(t) if p not in set(t.edges)])
  assert abs(np.mean(extra) / new_pairs - 0.05) < 0.01


def test_mutation_is_small():
  t = get_teacher('resnet34')
  rng = np.random.default_rng(3)
  a = sample(t, rng)
  seen = set()
  for _ in range(100):
    m = mutate(a, t, rng)
    kinds = [
        i for i, (x, y) in enumerate(zip(a.layers, m.layers))
        if x.kind != y.kind
    ]
    lost, gained = set(a.edges) - set(m.edges), set(m.edges) - set(a.edges)
    if kinds:  # one layer removed (dropping skips into it) or restored
      assert len(kinds) == 1 and not gained
      assert all(e[1] == kinds[0] for e in lost)
      seen.add('layer')
    elif lost or gained:  # one skip added or dropped
      assert len(lost) + len(gained) == 1
      seen.add('skip')
    else:  # one width group resized
      ga = {g.atoms: g.width for g in width_groups(a, t)}
      gm = {g.atoms: g.width for g in width_groups(m, t)}
      assert ga.keys() == gm.keys()
      assert sum(ga[k] != gm[k] for k in ga) == 1
      seen.add('width')
    a = m
  assert seen == {'layer', 'skip', 'width'}


def test_remove_and_restore():
  t = get_teacher('resnet18')
  i = removable_layers(t)[3]
  r = remove_layers(t, t, [i])
  assert r.layers[i].kind == 'identity' and r.num_layers == t.num_layers
  assert restore_layer(r, t, i) == t
  with pytest.raises(ValueError,
                     match=r"layer 0 \('stem.conv'.*cannot be "
                     'removed'):
    remove_layers(t, t, [0])
  with pytest.raises(ValueError, match='is not a removed layer'):
    restore_layer(t, t, i)


def test_skip_that_does_not_fit_is_refused():
  t = get_teacher('resnet18')
  with pytest.raises(ValueError, match=r'skip \(0, 59\) cannot be added'):
    add_skips(t, t, [(0, 59)])


def test_not_a_child():
  t = get_teacher('resnet18')
  other = get_teacher('resnet34')
  with pytest.raises(ValueError, match='children keep every layer'):
    check_child(other, t)
  wider = get_teacher('resnet18', width=2.0)
  with pytest.raises(ValueError, match="more than the teacher's"):
    check_child(wider, t)


def test_sampler_config_validation():
  with pytest.raises(ValueError, match='probabilities must lie in'):
    SamplerConfig(remove_probs=(1.5,))
  with pytest.raises(ValueError, match='shrink_range'):
    SamplerConfig(shrink_range=(0.5, 0.2))
  with pytest.raises(ValueError, match="unknown group_mode 'x'"):
    SamplerConfig(group_mode='x')


def test_sampling_is_deterministic_per_seed():
  t = get_teacher('shufflenet')
  a = [sample(t, np.random.default_rng(5)) for _ in range(2)]
  assert a[0] == a[1]
