"""Width groups: tied across residual sums, concats and depthwise convs."""

import pytest

from esnac_jax.arch import build_arch, get_teacher, shrink, width_groups
from esnac_jax.arch.widths import analyse, set_widths


@pytest.mark.parametrize('name', ['vgg19', 'resnet18', 'resnet34'])
def test_original_has_four_width_knobs(name):
  t = get_teacher(name)
  groups = width_groups(t, t, 'by_width')
  assert sorted(g.teacher_width for g in groups) == [64, 128, 256, 512]


def test_fine_mode_is_per_stream_and_per_block():
  t = get_teacher('resnet18')
  groups = width_groups(t, t, 'fine')
  # 4 residual streams + 8 block-inner widths.
  assert len(groups) == 12
  stream = [g for g in groups if 0 in g.atoms][0]
  names = {t.layers[a].name for a in stream.atoms}
  assert names == {'stem.conv', 'stage1.block0.conv2', 'stage1.block1.conv2'}


def test_shufflenet_concat_and_groups_divisible():
  t = get_teacher('shufflenet')
  for mode in ('by_width', 'fine'):
    for g in width_groups(t, t, mode):
      assert g.divisor == 2  # grouped convs and shuffles with 2 groups
  sa = analyse(t)
  # A stride-1 unit's output is the concat of the main branch and shortcut.
  unit1_conv3 = [
      i for i, l in enumerate(t.layers) if l.name == 'stage1.unit1.conv3'
  ][0]
  assert sa.out_spaces[unit1_conv3].atoms == (9, 11)  # unit0 conv3, short


def test_every_group_shrinks_consistently(teacher_name):
  t = get_teacher(teacher_name)
  for mode in ('by_width', 'fine'):
    for g in width_groups(t, t, mode):
      w = max(g.divisor, (g.teacher_width // 2) // g.divisor * g.divisor)
      child = shrink(t, t, [(g, w)])  # validates shapes on construction
      assert child.num_params < t.num_params


def test_mobilenet_depthwise_keeps_one_group_per_channel():
  t = get_teacher('mobilenetv2')
  g = [g for g in width_groups(t, t, 'fine') if g.teacher_width == 96][0]
  child = shrink(t, t, [(g, 40)])
  dw = [l for l in child.layers if l.name == 'stage2.block0.conv2'][0]
  assert dw.groups == dw.in_channels == dw.out_channels == 40


def test_shrink_that_breaks_a_residual_sum_is_refused():
  t = get_teacher('resnet18')
  layers = list(t.layers)
  i = [k for k, l in enumerate(layers) if l.name == 'stage1.block0.conv2'][0]
  layers[i] = layers[i].replace(out_channels=32)
  with pytest.raises(ValueError,
                     match=r"layer 8 \('stage1.block0.relu2', "
                     r'relu\): sums inputs of different shapes'):
    build_arch(t.input_shape, layers, t.edges)


def test_set_widths_rejects_bad_widths():
  t = get_teacher('shufflenet')
  g = width_groups(t, t, 'fine')[1]
  with pytest.raises(ValueError, match='positive multiple of 2'):
    set_widths(t, t, {g.atoms[0]: 5})
  r = get_teacher('resnet18')
  fc = r.num_layers - 1
  with pytest.raises(ValueError, match='tied to the network input or output'):
    set_widths(r, r, {fc: 5})
  with pytest.raises(ValueError, match='exceeds the teacher width'):
    rg = width_groups(r, r)[0]
    shrink(r, r, [(rg, 1000)])


def test_unknown_mode():
  t = get_teacher('resnet18')
  with pytest.raises(ValueError, match="unknown width-group mode 'coarse'"):
    width_groups(t, t, 'coarse')
