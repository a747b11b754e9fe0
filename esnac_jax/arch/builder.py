"""A small helper for writing architectures layer by layer.

It tracks shapes as layers are added, so a conv's in_channels comes from its
input. Use it to describe your own teacher (see the README).
"""

from __future__ import annotations

from typing import Sequence, Union

from esnac_jax.arch.core import (KINDS, Arch, Layer, Shape, build_arch,
                                 infer_out_shape)

INPUT = -1  # the network input, as a source for the first layer
Src = Union[int, Sequence[int]]
_ATTRS = ('kernel', 'stride', 'padding', 'groups', 'in_channels',
          'out_channels', 'bias', 'clip')


class ArchBuilder:
  """Appends layers in execution order; each call returns the layer index."""

  def __init__(self, input_shape: Shape, name: str = ''):
    self.input_shape = tuple(input_shape)
    self.name = name
    self.layers: list[Layer] = []
    self.edges: list[tuple[int, int]] = []
    self._shapes: list[Shape] = []

  def _shape(self, src: int) -> Shape:
    return self.input_shape if src == INPUT else self._shapes[src]

  def add(self, kind: str, src: Src, name: str = '', **attrs) -> int:
    i = len(self.layers)
    where = f'layer {i} ({name or kind})'
    if kind not in KINDS:
      raise ValueError(f'{where}: unknown layer kind {kind!r}; known kinds: '
                       f'{", ".join(KINDS)}')
    unknown = set(attrs) - set(_ATTRS)
    if unknown:
      raise ValueError(f'{where}: unknown fields {sorted(unknown)}; layers '
                       f'take {", ".join(_ATTRS)}')
    for key, value in attrs.items():
      want = bool if key == 'bias' else (int, float) if key == 'clip' else int
      if not isinstance(value, want) or (want is not bool and
                                         isinstance(value, bool)):
        raise ValueError(f'{where}: {key} must be '
                         f'{"true or false" if want is bool else "an integer"}'
                         f', got {value!r}')
    if not isinstance(name, str):
      raise ValueError(f'{where}: name must be a string, got {name!r}')
    srcs = [src] if isinstance(src, int) else list(src)
    if (i == 0) != (srcs == [INPUT]):
      raise ValueError(f'layer {i} ({name or kind}): only the first layer '
                       'reads the network input (src=INPUT)')
    for s in srcs if i else ():
      if isinstance(s, bool) or not isinstance(s, int) or not \
          0 <= s < i:
        raise ValueError(f'{where}: source {s!r} is not an earlier layer '
                         f'(0..{i - 1})')
    in_shapes = [self._shape(s) for s in srcs]
    if kind == 'conv':
      attrs.setdefault('in_channels', in_shapes[0][-1])
      attrs.setdefault('groups', 1)
    if kind == 'linear':
      attrs.setdefault('in_channels', in_shapes[0][0])
    layer = Layer(kind, (), (), name=name, **attrs)
    out = infer_out_shape(layer, in_shapes, f'layer {i} ({name or kind})')
    in_shape = out if kind == 'concat' else in_shapes[0]
    self.layers.append(layer.replace(in_shape=in_shape, out_shape=out))
    self._shapes.append(out)
    self.edges.extend((s, i) for s in srcs if s != INPUT)
    return i

  def channels(self, src: int) -> int:
    return self._shape(src)[-1]

  # Convenience wrappers, named as the ops they add.
  def conv(self,
           src: Src,
           out: int,
           kernel: int,
           stride: int = 1,
           padding: int = 0,
           groups: int = 1,
           bias: bool = False,
           name: str = '') -> int:
    return self.add('conv',
                    src,
                    name,
                    kernel=kernel,
                    stride=stride,
                    padding=padding,
                    groups=groups,
                    out_channels=out,
                    bias=bias)

  def bn(self, src: Src, name: str = '') -> int:
    return self.add('bn', src, name)

  def relu(self, src: Src, name: str = '', clip: float = 0.0) -> int:
    """max(x, 0), capped at `clip` when that is set (6: ReLU6)."""
    if clip:
      return self.add('relu', src, name, clip=clip)
    return self.add('relu', src, name)

  def maxpool(self,
              src: Src,
              kernel: int,
              stride: int,
              padding: int = 0,
              name: str = '') -> int:
    return self.add('maxpool',
                    src,
                    name,
                    kernel=kernel,
                    stride=stride,
                    padding=padding)

  def avgpool(self,
              src: Src,
              kernel: int,
              stride: int,
              padding: int = 0,
              name: str = '') -> int:
    return self.add('avgpool',
                    src,
                    name,
                    kernel=kernel,
                    stride=stride,
                    padding=padding)

  def shuffle(self, src: Src, groups: int, name: str = '') -> int:
    return self.add('shuffle', src, name, groups=groups)

  def concat(self, srcs: Sequence[int], name: str = '') -> int:
    return self.add('concat', list(srcs), name)

  def flatten(self, src: Src, name: str = '') -> int:
    return self.add('flatten', src, name)

  def linear(self,
             src: Src,
             out: int,
             bias: bool = True,
             name: str = '') -> int:
    return self.add('linear', src, name, out_channels=out, bias=bias)

  def build(self) -> Arch:
    return build_arch(self.input_shape, self.layers, self.edges, self.name)
