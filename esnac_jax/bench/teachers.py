"""Teachers for the benchmarks that no shipped config uses, written with
ArchBuilder as a user would write their own. Use one with
--config.teacher.name=esnac_jax.bench.teachers:vgg_chain."""

from __future__ import annotations

from esnac_jax.arch import INPUT, Arch, ArchBuilder


def vgg_chain(input_size: int,
              in_channels: int,
              num_classes: int,
              width: float = 1.0) -> Arch:
  """A plain VGG-like chain: conv-BN-ReLU pairs at 32, 64, 128 channels
  (times width) with a 2x2 max pool after the first two pairs, global
  average pooling, one linear layer. No skips, no branches."""
  b = ArchBuilder(input_shape=(input_size, input_size, in_channels),
                  name='vgg_chain')
  x, size = INPUT, input_size
  for stage, channels in enumerate((32, 64, 128)):
    for i in range(2):
      name = f'stage{stage}.{i}'
      x = b.conv(x, max(1, int(channels * width)), 3, 1, 1, name=f'{name}.conv')
      x = b.bn(x, name=f'{name}.bn')
      x = b.relu(x, name=f'{name}.relu')
    if stage < 2 and size >= 4:
      x = b.maxpool(x, 2, 2, name=f'stage{stage}.pool')
      size //= 2
  x = b.avgpool(x, kernel=size, stride=1, name='pool')
  x = b.flatten(x, name='flatten')
  b.linear(x, num_classes, name='fc')
  return b.build()


def branchy_net(input_size: int,
                in_channels: int,
                num_classes: int,
                width: float = 1.0) -> Arch:
  """Residual blocks around a two-branch block whose 1x1 and 3x3 branches
  are concatenated (the masked path refuses it: a child may remove the
  conv after the concat), then a strided conv to twice the channels and
  another residual block; global average pooling, one linear layer."""
  b = ArchBuilder(input_shape=(input_size, input_size, in_channels),
                  name='branchy_net')
  c = max(2, int(64 * width))

  def cbr(x: int,
          channels: int,
          kernel: int,
          name: str,
          stride: int = 1,
          relu: bool = True) -> int:
    x = b.conv(x, channels, kernel, stride, kernel // 2, name=f'{name}.conv')
    x = b.bn(x, name=f'{name}.bn')
    return b.relu(x, name=f'{name}.relu') if relu else x

  def residual(x: int, channels: int, name: str) -> int:
    h = cbr(cbr(x, channels, 3, f'{name}.a'),
            channels,
            3,
            f'{name}.b',
            relu=False)
    return b.relu([h, x], name=f'{name}.relu')

  x = residual(cbr(INPUT, c, 3, 'stem'), c, 'res0')
  x = b.concat(
      [cbr(x, c // 2, 1, 'branch.1x1'),
       cbr(x, c - c // 2, 3, 'branch.3x3')],
      name='branch.concat')
  x = cbr(x, c, 3, 'mix')
  size = input_size
  if size >= 4:
    x, size = cbr(x, 2 * c, 3, 'down', stride=2), (size + 1) // 2
  else:
    x = cbr(x, 2 * c, 3, 'down')
  x = residual(x, 2 * c, 'res1')
  x = b.avgpool(x, kernel=size, stride=1, name='pool')
  x = b.flatten(x, name='flatten')
  b.linear(x, num_classes, name='fc')
  return b.build()
