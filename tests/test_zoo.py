"""The teacher zoo against the original ESNAC definitions."""

import pytest

from esnac_jax.arch import get_teacher

# ../shared/reference/teacher-params.md and esnac-method.md section 2.3.
EXPECTED = {
    # name: (params at 10 classes, params at 100, layers, edges)
    'vgg19': (20040522, 20086692, 55, 54),
    'resnet18': (11173962, 11220132, 60, 67),
    'resnet34': (21282122, 21328292, 108, 123),
    'shufflenet': (987870, 1059960, 159, 174),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_original_teachers_exact(name):
  p10, p100, n, e = EXPECTED[name]
  for classes, params in ((10, p10), (100, p100)):
    t = get_teacher(name, num_classes=classes)
    assert t.num_params == params
    assert t.num_layers == n and len(t.edges) == e
    assert t.output_shape == (classes,)


def test_resnet_downsample_order():
  # In a downsampling block the shortcut conv/bn run after bn2 (original).
  t = get_teacher('resnet18')
  names = [l.name for l in t.layers]
  i = names.index('stage2.block0.bn2')
  assert names[i + 1:i + 4] == [
      'stage2.block0.down.conv', 'stage2.block0.down.bn', 'stage2.block0.relu2'
  ]


def test_shufflenet_structure():
  t = get_teacher('shufflenet')
  short = [i for i, l in enumerate(t.layers) if l.name.endswith('short.conv')]
  assert short == [11, 50, 125]  # the original's hand-coded indices
  concat = t.layers[13]
  assert concat.kind == 'concat' and t.in_edges[13] == (10, 12)


def test_mobilenetv2_and_width():
  t = get_teacher('mobilenetv2', num_classes=10)
  assert t.num_params == 2296922  # kuangliu CIFAR MobileNetV2
  half = get_teacher('resnet18', num_classes=10, width=0.5)
  assert half.layers[0].out_channels == 32
  small = get_teacher('resnet18',
                      num_classes=10,
                      in_channels=1,
                      width=0.25,
                      input_size=8)
  assert small.input_shape == (8, 8, 1) and small.output_shape == (10,)


def test_bad_teacher_requests():
  with pytest.raises(ValueError,
                     match="unknown teacher 'resnet50'; known "
                     'teachers: mobilenetv2, resnet18'):
    get_teacher('resnet50')
  with pytest.raises(ValueError, match='num_classes must be >= 1'):
    get_teacher('resnet18', num_classes=0)
  with pytest.raises(ValueError, match='vgg19 .* needs inputs of at least'):
    get_teacher('vgg19', input_size=8)
  with pytest.raises(ValueError, match='width must be > 0'):
    get_teacher('resnet18', width=0)
