"""Per-layer features: the original 272-number encoding and the normalised one."""

import numpy as np
import pytest

from esnac_jax.arch import (INPUT, KINDS, ArchBuilder, batch_features,
                            feature_dim, features, get_teacher, remove_layers,
                            removable_layers, sample)


def test_original_encoding_of_a_conv():
  t = get_teacher('resnet18')
  x = features(t)
  assert x.shape == (60, 272) and x.dtype == np.float32
  conv = x[3]  # stage1.block0.conv1: k3 s1 p1 g1 64->64, in from 2, out to 4
  assert conv[KINDS.index('conv')] == 1 and conv[:10].sum() == 1
  np.testing.assert_array_equal(conv[10:16], [3, 1, 1, 1, 64, 64])
  assert conv[16 + 1] == 1 and conv[16:144].sum() == 1
  assert conv[144 + 1] == 1 and conv[144:].sum() == 1
  relu2 = x[8]  # sums bn2 (offset 1) and the block input (offset 6)
  assert relu2[16 + 1] == relu2[16 + 6] == 1
  np.testing.assert_array_equal(relu2[10:16], 0)  # no attributes on ReLU


def test_removed_layer_is_identity_row_with_links():
  t = get_teacher('resnet18')
  i = removable_layers(t)[2]
  r = remove_layers(t, t, [i])
  x, y = features(t), features(r)
  assert y[i, KINDS.index('identity')] == 1 and y[i, 10:16].sum() == 0
  np.testing.assert_array_equal(x[i, 16:], y[i, 16:])


def test_long_offsets():
  b = ArchBuilder((4, 4, 2))
  b.conv(INPUT, 2, 1)
  for i in range(1, 140):
    b.relu([i - 1, 0] if i == 135 else i - 1)
  far = b.build()  # a skip of offset 135 into layer 135
  orig = features(far)
  assert orig[135, 16:144].sum() == 1  # only the offset-1 link: 135 dropped
  norm = features(far, kind='normalized')
  assert norm.shape == (140, feature_dim('normalized'))
  assert norm[135].sum() > norm[134].sum()  # the long link is encoded


def test_normalized_scales_widths_by_teacher():
  t = get_teacher('vgg19')
  c = sample(t, np.random.default_rng(0))
  x = features(c, t, 'normalized')
  assert np.isfinite(x).all() and x.max() <= 12
  k = len(KINDS)
  for i, l in enumerate(c.layers):
    assert x[i, k + 5] == pytest.approx(l.out_shape[-1] /
                                        t.layers[i].out_shape[-1])


def test_batch_and_errors():
  t = get_teacher('resnet18')
  rng = np.random.default_rng(0)
  b = batch_features([sample(t, rng) for _ in range(3)], t)
  assert b.shape == (3, 60, 272)
  with pytest.raises(ValueError, match="unknown feature kind 'raw'"):
    features(t, kind='raw')
  with pytest.raises(ValueError, match='layers but its teacher'):
    features(t, get_teacher('resnet34'), 'normalized')
