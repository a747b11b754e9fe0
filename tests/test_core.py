"""The Arch value: validation, JSON, hashing, parameter and FLOP counts."""

import json

import pytest

from esnac_jax.arch import INPUT, Arch, ArchBuilder, Layer, build_arch


def small_arch():
  b = ArchBuilder((8, 8, 3), 'small')
  x = b.conv(INPUT, 4, 3, 1, 1, name='c0')
  x = b.bn(x, name='b0')
  y = b.relu(x, name='r0')
  z = b.conv(y, 4, 3, 1, 1, bias=True, name='c1')
  s = b.relu([z, y], name='sum')
  p = b.maxpool(s, 2, 2, name='pool')
  f = b.flatten(p, name='flat')
  b.linear(f, 5, name='fc')
  return b.build()


def test_counts_by_hand():
  a = small_arch()
  # conv 3*3*3*4, bn 2*4, conv 3*3*4*4 + 4, linear 64*5 + 5
  assert a.num_params == 108 + 8 + 148 + 325
  assert a.output_shape == (5,)
  assert a.layers[5].out_shape == (4, 4, 4)
  # FLOPs: two convs (2 MAC + bias), bn, two relus, the extra summand,
  # max pool, linear.
  expected = (2 * 64 * 9 * 3 * 4 + 2 * 64 * 9 * 4 * 4 + 64 * 4 + 2 * 256 + 256 +
              256 + 256 + 16 * 4 * 4 + 2 * 64 * 5 + 5)
  assert a.flops == expected


def test_json_round_trip_and_hash():
  a = small_arch()
  b = Arch.from_json(a.to_json())
  assert a == b and hash(a) == hash(b)
  assert json.loads(a.to_json())['format'] == 'esnac_jax.arch/1'
  assert len({a, b}) == 1


def test_edges_are_canonical():
  a = small_arch()
  b = Arch(a.input_shape, a.layers, tuple(reversed(a.edges)), a.name)
  assert a == b


def _layers(a):
  return list(a.layers)


def test_inconsistent_shapes_name_the_layer():
  a = small_arch()
  layers = _layers(a)
  layers[3] = layers[3].replace(out_shape=(8, 8, 5))
  with pytest.raises(ValueError, match=r"layer 3 \('c1', conv\).*declared"):
    Arch(a.input_shape, layers, a.edges)


def test_unknown_kind_names_the_layer():
  a = small_arch()
  layers = _layers(a)
  layers[2] = layers[2].replace(kind='gelu')
  with pytest.raises(ValueError,
                     match=r"layer 2 \('r0', gelu\).*unknown "
                     r"layer kind 'gelu'"):
    Arch(a.input_shape, layers, a.edges)


def test_edge_to_missing_layer():
  a = small_arch()
  with pytest.raises(ValueError, match='missing layer 42'):
    Arch(a.input_shape, a.layers, a.edges + ((3, 42),))


def test_backward_edge_and_orphan_layer():
  a = small_arch()
  with pytest.raises(ValueError, match=r'edge \(5, 2\) does not point forward'):
    Arch(a.input_shape, a.layers, a.edges + ((5, 2),))
  edges = tuple(e for e in a.edges if e[1] != 3)
  with pytest.raises(ValueError,
                     match=r"layer 3 \('c1', conv\) has no "
                     'in-edges'):
    Arch(a.input_shape, a.layers, edges)


def test_sum_of_mismatched_shapes_names_the_layer():
  a = small_arch()
  layers = _layers(a)
  layers[3] = layers[3].replace(out_channels=6)
  with pytest.raises(ValueError,
                     match=r"layer 4 \('sum', relu\): sums "
                     'inputs of different shapes'):
    build_arch(a.input_shape, layers, a.edges)


def test_bad_conv_attributes():
  a = small_arch()
  layers = _layers(a)
  layers[3] = layers[3].replace(groups=3)
  with pytest.raises(ValueError, match=r"layer 3 \('c1', conv\): groups=3"):
    build_arch(a.input_shape, layers, a.edges)
  layers = _layers(a)
  layers[3] = layers[3].replace(in_channels=7)
  with pytest.raises(ValueError,
                     match=r"layer 3 \('c1', conv\): "
                     'in_channels=7 but the input has 4'):
    build_arch(a.input_shape, layers, a.edges)


def test_linear_needs_flat_input():
  b = ArchBuilder((4, 4, 3))
  x = b.conv(INPUT, 2, 1)
  with pytest.raises(ValueError, match='linear needs a flat input'):
    b.linear(x, 3)


def test_from_dict_rejects_foreign_data():
  with pytest.raises(ValueError, match='not an esnac_jax Arch'):
    Arch.from_dict({'layers': []})
  d = small_arch().to_dict()
  d['layers'][0]['colour'] = 'red'
  with pytest.raises(ValueError, match=r"layer 0: unknown fields \['colour'\]"):
    Arch.from_dict(d)


def test_layer_is_frozen():
  layer = Layer('relu', (1, 1, 1), (1, 1, 1))
  with pytest.raises(Exception):
    layer.kind = 'bn'


def _relu6_arch():
  b = ArchBuilder((6, 6, 2), 'capped')
  x = b.bn(b.conv(INPUT, 4, 3, 1, 1, name='c0'), name='b0')
  x = b.relu(x, name='r0', clip=6)
  x = b.relu(b.conv(x, 4, 3, 1, 1, name='c1'), name='r1')
  x = b.flatten(b.avgpool(x, 6, 1, name='pool'), name='flat')
  b.linear(x, 3, name='fc')
  return b.build()


def test_a_capped_relu_is_part_of_the_value_and_its_document():
  a = _relu6_arch()
  assert a.layers[2].clip == 6.0 and a.layers[4].clip == 0.0
  doc = a.to_dict()
  assert doc['layers'][2]['clip'] == 6
  assert 'clip' not in doc['layers'][4]  # unclipped layers as before
  back = Arch.from_json(a.to_json())
  assert back == a and hash(back) == hash(a)
  assert a.num_params == back.num_params and a.flops == back.flops
  unclipped = dict(doc, layers=[dict(l, clip=0) for l in doc['layers']])
  assert Arch.from_dict(unclipped) != a


def test_a_capped_relu_caps_and_its_children_keep_the_cap():
  import jax
  import numpy as np
  from esnac_jax.arch import sample
  from esnac_jax.models import init_variables, make_model
  a = _relu6_arch()
  rng = np.random.default_rng(0)
  kids = [sample(a, rng) for _ in range(6)]
  for kid in kids:
    assert all(l.clip == 6.0
               for l in kid.layers
               if l.name == 'r0' and l.kind == 'relu')
  assert any(k.layers[2].kind == 'relu' for k in kids)
  v = init_variables(a, jax.random.key(0))
  x = np.full((1, 6, 6, 2), 100.0, np.float32)
  # With the cap, the first block's output cannot exceed 6: compare a
  # model whose r0 is uncapped, which sees ~100x larger activations.
  loose = build_arch(a.input_shape, [l.replace(clip=0.0) for l in a.layers],
                     a.edges, a.name)
  capped_out = make_model(a).apply(v, x, train=False)
  loose_out = make_model(loose).apply(v, x, train=False)
  assert not np.allclose(capped_out, loose_out)


@pytest.mark.parametrize('field,value,message', [
    ('clip', -1, r'clip=-1: only a relu takes a clip'),
    ('clip', 'six', r'clip must be a number'),
    ('clip', True, r'clip must be a number'),
])
def test_bad_clips_name_the_layer(field, value, message):
  doc = _relu6_arch().to_dict()
  doc['layers'][2][field] = value
  with pytest.raises(ValueError,
                     match=r"layer 2 \('r0', relu\).*" +
                     message if 'only' in message else message):
    Arch.from_dict(doc)


def test_only_a_relu_takes_a_clip():
  doc = _relu6_arch().to_dict()
  doc['layers'][0]['clip'] = 6
  with pytest.raises(ValueError, match=r"layer 0 \('c0', conv\): clip=6"):
    Arch.from_dict(doc)
