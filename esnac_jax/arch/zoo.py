"""Teacher zoo: the original ESNAC CIFAR teachers as `Arch` values.

Layer order, edges and parameter counts follow the original PyTorch
definitions (models/vgg_m.py, resnet_m.py, shufflenet_m.py): with 3 input
channels, 32x32 inputs and width 1 the counts equal the original's exactly.
MobileNetV2 (CIFAR variant) is a second family for transfer experiments.

The final average pool covers the whole remaining feature map, so smaller
inputs (e.g. 8x8 digits) work wherever the downsampling fits.
"""

from __future__ import annotations

from typing import Callable

from esnac_jax.arch.builder import INPUT, ArchBuilder
from esnac_jax.arch.core import Arch

VGG19_CFG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512,
             512, 'M', 512, 512, 512, 512, 'M')
# (expansion, out_planes, num_blocks, stride) of the CIFAR MobileNetV2.
MOBILENETV2_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                   (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _scale(c: int, width: float, multiple: int = 1) -> int:
  if width == 1.0:
    return c
  return max(multiple, int(round(c * width / multiple)) * multiple)


def _check(num_classes: int, in_channels: int, input_size: int,
           width: float) -> None:
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1, got {num_classes}')
  if in_channels < 1:
    raise ValueError(f'in_channels must be >= 1, got {in_channels}')
  if input_size < 1:
    raise ValueError(f'input_size must be >= 1, got {input_size}')
  if not width > 0:
    raise ValueError(f'width must be > 0, got {width}')


def _head(b: ArchBuilder, x: int, num_classes: int, pool_stride1: bool) -> None:
  h = b._shape(x)[0]
  b.avgpool(x, h, 1 if pool_stride1 else h, name='head.avgpool')
  b.flatten(len(b.layers) - 1, name='head.flatten')
  b.linear(len(b.layers) - 1, num_classes, name='head.fc')


def vgg19(num_classes: int = 100,
          in_channels: int = 3,
          width: float = 1.0,
          input_size: int = 32) -> Arch:
  """VGG-19 with BN: convs with bias, 5 max pools, one Linear."""
  _check(num_classes, in_channels, input_size, width)
  if input_size < 32:
    raise ValueError(f'vgg19 has 5 stride-2 max pools and needs inputs of at '
                     f'least 32x32, got {input_size}x{input_size}')
  b = ArchBuilder((input_size, input_size, in_channels), 'vgg19')
  x, stage, k = INPUT, 1, 0
  for v in VGG19_CFG:
    if v == 'M':
      x = b.maxpool(x, 2, 2, name=f'stage{stage}.pool')
      stage, k = stage + 1, 0
      continue
    x = b.conv(x,
               _scale(v, width),
               3,
               1,
               1,
               bias=True,
               name=f'stage{stage}.conv{k}')
    x = b.bn(x, name=f'stage{stage}.bn{k}')
    x = b.relu(x, name=f'stage{stage}.relu{k}')
    k += 1
  if b._shape(x)[:2] != (1, 1):
    # The original's Linear(512) expects a 1x1 map; pool what is left.
    _head(b, x, num_classes, pool_stride1=True)
  else:
    x = b.flatten(x, name='head.flatten')
    b.linear(x, num_classes, name='head.fc')
  return b.build()


def _resnet(blocks: tuple[int, ...], name: str, num_classes: int,
            in_channels: int, width: float, input_size: int) -> Arch:
  _check(num_classes, in_channels, input_size, width)
  b = ArchBuilder((input_size, input_size, in_channels), name)
  planes0 = _scale(64, width)
  x = b.conv(INPUT, planes0, 3, 1, 1, name='stem.conv')
  x = b.bn(x, name='stem.bn')
  x = b.relu(x, name='stem.relu')
  for s, n in enumerate(blocks):
    planes = _scale(64 * 2**s, width)
    for k in range(n):
      stride = 2 if (s > 0 and k == 0) else 1
      p = f'stage{s + 1}.block{k}.'
      inp = x
      h = b.conv(inp, planes, 3, stride, 1, name=p + 'conv1')
      h = b.bn(h, name=p + 'bn1')
      h = b.relu(h, name=p + 'relu1')
      h = b.conv(h, planes, 3, 1, 1, name=p + 'conv2')
      h = b.bn(h, name=p + 'bn2')
      res = inp
      if stride != 1 or b.channels(inp) != planes:
        res = b.conv(inp, planes, 1, stride, 0, name=p + 'down.conv')
        res = b.bn(res, name=p + 'down.bn')
      x = b.relu([h, res], name=p + 'relu2')
  _head(b, x, num_classes, pool_stride1=True)
  return b.build()


def resnet18(num_classes: int = 100,
             in_channels: int = 3,
             width: float = 1.0,
             input_size: int = 32) -> Arch:
  """CIFAR ResNet-18: 3x3 stem, BasicBlocks [2, 2, 2, 2], no max pool."""
  return _resnet((2, 2, 2, 2), 'resnet18', num_classes, in_channels, width,
                 input_size)


def resnet34(num_classes: int = 100,
             in_channels: int = 3,
             width: float = 1.0,
             input_size: int = 32) -> Arch:
  """CIFAR ResNet-34: 3x3 stem, BasicBlocks [3, 4, 6, 3], no max pool."""
  return _resnet((3, 4, 6, 3), 'resnet34', num_classes, in_channels, width,
                 input_size)


def shufflenet(num_classes: int = 100,
               in_channels: int = 3,
               width: float = 1.0,
               input_size: int = 32,
               groups: int = 2) -> Arch:
  """The original's ShuffleNet (groups=2, out 200/400/800, blocks 4/8/4).

  Stride-2 units concatenate a shortcut of a grouped 1x1 conv and a 3x3
  average pool. With width != 1, widths are rounded to multiples of 8 so
  every grouped conv and shuffle stays divisible.
  """
  _check(num_classes, in_channels, input_size, width)
  b = ArchBuilder((input_size, input_size, in_channels), 'shufflenet')
  stem = _scale(24, width, 8)
  x = b.conv(INPUT, stem, 1, name='stem.conv')
  x = b.bn(x, name='stem.bn')
  x = b.relu(x, name='stem.relu')
  first = True
  for s, (out_planes, n) in enumerate(zip((200, 400, 800), (4, 8, 4))):
    out_planes = _scale(out_planes, width, 8)
    for k in range(n):
      stride = 2 if k == 0 else 1
      inp = x
      cin = b.channels(inp)
      out = out_planes - cin if stride == 2 else out_planes
      mid = out // 4
      g = 1 if first else groups
      first = False
      p = f'stage{s + 1}.unit{k}.'
      h = b.conv(inp, mid, 1, groups=g, name=p + 'conv1')
      h = b.bn(h, name=p + 'bn1')
      h = b.relu(h, name=p + 'relu1')
      h = b.shuffle(h, g, name=p + 'shuffle')
      h = b.conv(h, mid, 3, stride, 1, groups=mid, name=p + 'conv2')
      h = b.bn(h, name=p + 'bn2')
      h = b.conv(h, out, 1, groups=groups, name=p + 'conv3')
      h = b.bn(h, name=p + 'bn3')
      if stride == 2:
        r = b.conv(inp, cin, 1, groups=2, name=p + 'short.conv')
        r = b.avgpool(r, 3, 2, 1, name=p + 'short.avgpool')
        c = b.concat([h, r], name=p + 'concat')
        x = b.relu(c, name=p + 'relu')
      else:
        x = b.relu([h, inp], name=p + 'relu')
  _head(b, x, num_classes, pool_stride1=False)
  return b.build()


def mobilenetv2(num_classes: int = 100,
                in_channels: int = 3,
                width: float = 1.0,
                input_size: int = 32) -> Arch:
  """CIFAR MobileNetV2 (stride-1 stem and second stage, ReLU activations).

  A residual sum with no op after it becomes an explicit `identity` layer
  named '...add', since an Arch sums inputs only at a layer's input.
  """
  _check(num_classes, in_channels, input_size, width)
  b = ArchBuilder((input_size, input_size, in_channels), 'mobilenetv2')
  x = b.conv(INPUT, _scale(32, width), 3, 1, 1, name='stem.conv')
  x = b.bn(x, name='stem.bn')
  x = b.relu(x, name='stem.relu')
  for s, (expansion, out_planes, n, stride0) in enumerate(MOBILENETV2_CFG):
    out_planes = _scale(out_planes, width)
    for k in range(n):
      stride = stride0 if k == 0 else 1
      inp = x
      cin = b.channels(inp)
      planes = expansion * cin
      p = f'stage{s + 1}.block{k}.'
      h = b.conv(inp, planes, 1, name=p + 'conv1')
      h = b.bn(h, name=p + 'bn1')
      h = b.relu(h, name=p + 'relu1')
      h = b.conv(h, planes, 3, stride, 1, groups=planes, name=p + 'conv2')
      h = b.bn(h, name=p + 'bn2')
      h = b.relu(h, name=p + 'relu2')
      h = b.conv(h, out_planes, 1, name=p + 'conv3')
      h = b.bn(h, name=p + 'bn3')
      if stride == 1:
        res = inp
        if cin != out_planes:
          res = b.conv(inp, out_planes, 1, name=p + 'short.conv')
          res = b.bn(res, name=p + 'short.bn')
        h = b.add('identity', [h, res], name=p + 'add')
      x = h
  x = b.conv(x, _scale(1280, width), 1, name='head.conv')
  x = b.bn(x, name='head.bn')
  x = b.relu(x, name='head.relu')
  _head(b, x, num_classes, pool_stride1=False)
  return b.build()


TEACHERS: dict[str, Callable[..., Arch]] = {
    'vgg19': vgg19,
    'resnet18': resnet18,
    'resnet34': resnet34,
    'shufflenet': shufflenet,
    'mobilenetv2': mobilenetv2,
}


def get_teacher(name: str,
                num_classes: int = 100,
                in_channels: int = 3,
                width: float = 1.0,
                input_size: int = 32) -> Arch:
  """A teacher Arch by name; raises ValueError listing the known names."""
  if name not in TEACHERS:
    raise ValueError(f'unknown teacher {name!r}; known teachers: '
                     f'{", ".join(sorted(TEACHERS))}')
  return TEACHERS[name](num_classes=num_classes,
                        in_channels=in_channels,
                        width=width,
                        input_size=input_size)
