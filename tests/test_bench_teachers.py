"""The benchmarks' own ArchBuilder teachers: valid at the digits' and
CIFAR's sizes, and every compression operator works on their children."""

import numpy as np
import pytest

from esnac_jax.arch import check_child, mutate, sample
from esnac_jax.bench.teachers import branchy_net, vgg_chain
from esnac_jax.models.masked import check_maskable


@pytest.mark.parametrize('build', [vgg_chain, branchy_net])
@pytest.mark.parametrize('size,channels,width', [(8, 1, 0.125), (32, 3, 1.0)])
def test_teachers_build_and_give_valid_children(build, size, channels, width):
  t = build(size, channels, 10, width)
  assert t.input_shape == (size, size, channels) and t.output_shape == (10,)
  rng = np.random.default_rng(0)
  for _ in range(5):
    child = mutate(sample(t, rng), t, rng)
    check_child(child, t)
    assert child.num_params < t.num_params


def test_branchy_net_has_a_concat_the_masked_path_refuses():
  t = branchy_net(8, 1, 10, 0.125)
  assert [l.kind for l in t.layers].count('concat') == 1
  with pytest.raises(ValueError, match=r"removing layer \d+ \('mix\.conv'\)"):
    check_maskable(t)
  check_maskable(vgg_chain(8, 1, 10, 0.125))
