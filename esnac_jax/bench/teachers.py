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
