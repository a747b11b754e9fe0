"""The architecture value: layers in execution order plus directed edges.

An `Arch` is frozen and hashable, so it serves as a jit cache key, a dedup key
and the thing checkpoints and results store. Every field is a plain int, str,
bool or tuple, so it round-trips through JSON exactly.

Semantics (as in the original ESNAC): layer 0 reads the network input; every
other layer reads the *sum* of the outputs of its in-edges, except `concat`,
which concatenates them along channels in ascending source order. The last
layer's output is the network output. Tensors are NHWC without the batch
dimension: spatial shapes are (H, W, C), flat ones (F,).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any, Sequence

Shape = tuple[int, ...]

# The order is the original's one-hot order (layer.py `supported_base`).
KINDS = ('identity', 'flatten', 'concat', 'shuffle', 'conv', 'maxpool',
         'avgpool', 'relu', 'bn', 'linear')
PARAM_KINDS = ('conv', 'bn', 'linear')
FORMAT = 'esnac_jax.arch/1'


@dataclasses.dataclass(frozen=True)
class Layer:
  """One primitive op. Unused attributes stay 0 (as in the original encoding).

  kernel/stride/padding: conv and pooling (square, symmetric padding).
  groups: conv feature groups; for `shuffle` the number of shuffle groups.
  in_channels/out_channels: conv and linear only.
  bias: conv and linear only.
  name: a human label (e.g. 'stage2.block0.conv1'); not part of semantics but
    part of equality, so keep it stable for a teacher and its children.
  clip: relu only: an upper bound (6 for ReLU6); 0 for none. Left out of
    Arch documents when 0.
  """
  kind: str
  in_shape: Shape
  out_shape: Shape
  kernel: int = 0
  stride: int = 0
  padding: int = 0
  groups: int = 0
  in_channels: int = 0
  out_channels: int = 0
  bias: bool = False
  name: str = ''
  clip: float = 0.0

  @property
  def num_params(self) -> int:
    if self.kind == 'conv':
      w = self.kernel * self.kernel * (self.in_channels // self.groups)
      return w * self.out_channels + (self.out_channels if self.bias else 0)
    if self.kind == 'linear':
      return (self.in_channels * self.out_channels +
              (self.out_channels if self.bias else 0))
    if self.kind == 'bn':
      return 2 * self.out_shape[-1]
    return 0

  def replace(self, **changes: Any) -> Layer:
    return dataclasses.replace(self, **changes)


def _label(i: int, layer: Layer) -> str:
  return f"layer {i} ('{layer.name}', {layer.kind})" if layer.name else (
      f'layer {i} ({layer.kind})')


def _conv_out(size: int, k: int, s: int, p: int) -> int:
  return (size + 2 * p - k) // s + 1


def infer_out_shape(layer: Layer, in_shapes: Sequence[Shape],
                    where: str) -> Shape:
  """The output shape a layer produces from its input shapes.

  Raises ValueError naming `where` (the layer) when the layer cannot accept
  its inputs. `in_shapes` holds one shape per in-edge (one for layer 0).
  """
  kind = layer.kind
  if kind not in KINDS:
    raise ValueError(f'{where}: unknown layer kind {kind!r}; known kinds: '
                     f'{", ".join(KINDS)}')
  if not in_shapes:
    raise ValueError(f'{where}: has no input (no in-edges)')
  if kind == 'concat':
    spatial = {s[:-1] for s in in_shapes}
    if len(spatial) != 1 or any(len(s) != 3 for s in in_shapes):
      raise ValueError(f'{where}: concat inputs must share H and W, got '
                       f'{list(in_shapes)}')
    h, w = next(iter(spatial))
    return (h, w, sum(s[-1] for s in in_shapes))
  if len(set(in_shapes)) != 1:
    raise ValueError(f'{where}: sums inputs of different shapes '
                     f'{list(in_shapes)}')
  x = in_shapes[0]
  if layer.clip and (kind != 'relu' or not 0 < layer.clip < float('inf')):
    raise ValueError(f'{where}: clip={layer.clip!r}: only a relu takes a '
                     'clip, a finite upper bound > 0 (6 for ReLU6)')
  if kind in ('identity', 'relu'):
    return x
  if kind == 'flatten':
    return (math.prod(x),)
  if kind == 'linear':
    if len(x) != 1:
      raise ValueError(f'{where}: linear needs a flat input, got {x}; put a '
                       'flatten layer before it')
    if layer.in_channels != x[0]:
      raise ValueError(f'{where}: in_channels={layer.in_channels} but the '
                       f'input has {x[0]} features')
    if layer.out_channels < 1:
      raise ValueError(f'{where}: out_channels must be >= 1')
    return (layer.out_channels,)
  if len(x) != 3:
    raise ValueError(f'{where}: {kind} needs an (H, W, C) input, got {x}')
  h, w, c = x
  if kind == 'bn':
    return x
  if kind == 'shuffle':
    if layer.groups < 1 or c % layer.groups:
      raise ValueError(f'{where}: {c} channels cannot be shuffled in '
                       f'{layer.groups} groups')
    return x
  if layer.kernel < 1 or layer.stride < 1 or layer.padding < 0:
    raise ValueError(f'{where}: bad kernel/stride/padding '
                     f'{layer.kernel}/{layer.stride}/{layer.padding}')
  oh = _conv_out(h, layer.kernel, layer.stride, layer.padding)
  ow = _conv_out(w, layer.kernel, layer.stride, layer.padding)
  if oh < 1 or ow < 1:
    raise ValueError(f'{where}: kernel {layer.kernel} does not fit the '
                     f'{h}x{w} input')
  if kind in ('maxpool', 'avgpool'):
    return (oh, ow, c)
  # conv
  if layer.in_channels != c:
    raise ValueError(f'{where}: in_channels={layer.in_channels} but the input '
                     f'has {c} channels')
  g = layer.groups
  if g < 1 or layer.in_channels % g or layer.out_channels % g:
    raise ValueError(f'{where}: groups={g} must divide in_channels='
                     f'{layer.in_channels} and out_channels='
                     f'{layer.out_channels}')
  if layer.out_channels < 1:
    raise ValueError(f'{where}: out_channels must be >= 1')
  return (oh, ow, layer.out_channels)


@dataclasses.dataclass(frozen=True)
class Arch:
  """A network: `layers` in execution order, `edges` as sorted (src, dst).

  Constructing an Arch validates it; an invalid one raises ValueError that
  names the offending layer or edge.
  """
  input_shape: Shape
  layers: tuple[Layer, ...]
  edges: tuple[tuple[int, int], ...]
  name: str = ''

  def __post_init__(self):
    object.__setattr__(self, 'input_shape', tuple(self.input_shape))
    object.__setattr__(self, 'layers', tuple(self.layers))
    object.__setattr__(self, 'edges',
                       tuple(sorted({(int(a), int(b)) for a, b in self.edges})))
    _validate(self)

  def __hash__(self) -> int:
    return self._hash

  @functools.cached_property
  def _hash(self) -> int:
    # Searchers hash thousands of candidates per step (dedup sets, caches).
    return hash((self.input_shape, self.layers, self.edges, self.name))

  # ---- structure -------------------------------------------------------
  @property
  def num_layers(self) -> int:
    return len(self.layers)

  @functools.cached_property
  def in_edges(self) -> tuple[tuple[int, ...], ...]:
    ins = [[] for _ in self.layers]
    for a, b in self.edges:
      ins[b].append(a)
    return tuple(tuple(x) for x in ins)

  @functools.cached_property
  def out_edges(self) -> tuple[tuple[int, ...], ...]:
    outs = [[] for _ in self.layers]
    for a, b in self.edges:
      outs[a].append(b)
    return tuple(tuple(x) for x in outs)

  @property
  def output_shape(self) -> Shape:
    return self.layers[-1].out_shape

  # ---- cost ------------------------------------------------------------
  @functools.cached_property
  def num_params(self) -> int:
    """Trainable parameters (conv/linear weights and biases, BN scale/shift)."""
    return sum(l.num_params for l in self.layers)

  @functools.cached_property
  def flops(self) -> int:
    """Floating-point operations of one forward pass of one example.

    Conv and linear count 2 per multiply-add plus 1 per bias; BN 2 per
    element (inference form); ReLU 1 per element; pooling k*k per output
    element; each extra summed input 1 per element.
    """
    total = 0
    for i, l in enumerate(self.layers):
      out = math.prod(l.out_shape)
      if l.kind == 'conv':
        macs = out * l.kernel * l.kernel * (l.in_channels // l.groups)
        total += 2 * macs + (out if l.bias else 0)
      elif l.kind == 'linear':
        total += 2 * l.in_channels * l.out_channels + (l.out_channels
                                                       if l.bias else 0)
      elif l.kind == 'bn':
        total += 2 * out
      elif l.kind == 'relu':
        total += out
      elif l.kind in ('maxpool', 'avgpool'):
        total += out * l.kernel * l.kernel
      if l.kind != 'concat' and len(self.in_edges[i]) > 1:
        total += (len(self.in_edges[i]) - 1) * math.prod(l.in_shape)
    return total

  # ---- edits -----------------------------------------------------------
  def replace(self, **changes: Any) -> Arch:
    return dataclasses.replace(self, **changes)

  # ---- serialisation ---------------------------------------------------
  def to_dict(self) -> dict[str, Any]:
    return {
        'format': FORMAT,
        'name': self.name,
        'input_shape': list(self.input_shape),
        'layers': [_layer_to_dict(l) for l in self.layers],
        'edges': [list(e) for e in self.edges],
    }

  def to_json(self, **kwargs: Any) -> str:
    return json.dumps(self.to_dict(), **kwargs)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> Arch:
    """The Arch a `to_dict` document describes; a malformed document
    raises ValueError naming the layer and field."""
    if not isinstance(d, dict) or d.get('format') != FORMAT:
      raise ValueError(
          f'not an esnac_jax Arch (expected format {FORMAT!r}, '
          f'got {d.get("format") if isinstance(d, dict) else d!r})')
    missing = [k for k in ('input_shape', 'layers', 'edges') if k not in d]
    if missing:
      raise ValueError(f'Arch document lacks {", ".join(missing)}')
    unknown = set(d) - {'format', 'name', 'input_shape', 'layers', 'edges'}
    if unknown:
      raise ValueError(f'Arch document has unknown fields {sorted(unknown)}')
    if not isinstance(d['layers'], list):
      raise ValueError(f'Arch document: layers must be a list, got '
                       f'{type(d["layers"]).__name__}')
    name = d.get('name', '')
    if not isinstance(name, str):
      raise ValueError(f'Arch document: name must be a string, got {name!r}')
    layers = tuple(_layer_from_dict(i, ld) for i, ld in enumerate(d['layers']))
    edges = d['edges']
    if not isinstance(edges, list) or not all(
        isinstance(e, (list, tuple)) and len(e) == 2 and all(
            _is_int(v) for v in e) for e in edges):
      bad = next((e for e in edges if not (
          isinstance(e, (list, tuple)) and len(e) == 2 and
          all(_is_int(v) for v in e))), edges) if isinstance(edges, list) \
          else edges
      raise ValueError(f'Arch document: edges must be [source, target] '
                       f'pairs of layer indices, got {bad!r}')
    return cls(input_shape=_shape(d['input_shape'], 'input_shape'),
               layers=layers,
               edges=tuple(tuple(e) for e in edges),
               name=name)

  @classmethod
  def from_json(cls, s: str) -> Arch:
    try:
      d = json.loads(s)
    except json.JSONDecodeError as e:
      raise ValueError(f'an Arch document is not JSON: {e}') from None
    return cls.from_dict(d)

  def summary(self) -> str:
    """A human-readable table of the layers."""
    rows = [
        f'{self.name or "arch"}: {self.num_layers} layers, '
        f'{len(self.edges)} edges, {self.num_params:,} params, '
        f'{self.flops / 1e6:,.1f} MFLOPs, input {self.input_shape}'
    ]
    for i, l in enumerate(self.layers):
      extra = ''
      if l.kind == 'conv':
        extra = (f'k{l.kernel} s{l.stride} p{l.padding} g{l.groups} '
                 f'{l.in_channels}->{l.out_channels}')
      elif l.kind in ('maxpool', 'avgpool'):
        extra = f'k{l.kernel} s{l.stride} p{l.padding}'
      elif l.kind == 'linear':
        extra = f'{l.in_channels}->{l.out_channels}'
      elif l.kind == 'shuffle':
        extra = f'g{l.groups}'
      rows.append(f'{i:4d} {l.kind:8s} {l.name:28s} {str(l.out_shape):16s} '
                  f'in={list(self.in_edges[i])} {extra}')
    return '\n'.join(rows)


_LAYER_FIELDS = {f.name for f in dataclasses.fields(Layer)}
_INT_FIELDS = ('kernel', 'stride', 'padding', 'groups', 'in_channels',
               'out_channels')


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _shape(v: Any, where: str) -> Shape:
  if not isinstance(v, (list, tuple)) or not all(_is_int(x) for x in v):
    raise ValueError(f'{where} must be a list of integers, got {v!r}')
  return tuple(v)


def _layer_from_dict(i: int, ld: Any) -> Layer:
  """Layer i of an Arch document, each field's type checked."""
  if not isinstance(ld, dict):
    raise ValueError(f'layer {i}: expected an object of layer fields, got '
                     f'{type(ld).__name__}')
  unknown = set(ld) - _LAYER_FIELDS
  if unknown:
    raise ValueError(f'layer {i}: unknown fields {sorted(unknown)}')
  for key in ('kind', 'in_shape', 'out_shape'):
    if key not in ld:
      raise ValueError(f'layer {i}: lacks the field {key!r}')
  if not isinstance(ld['kind'], str):
    raise ValueError(f'layer {i}: kind must be a string, got {ld["kind"]!r}')
  for key in _INT_FIELDS:
    if key in ld and not _is_int(ld[key]):
      raise ValueError(f'layer {i} ({ld["kind"]}): {key} must be an '
                       f'integer, got {ld[key]!r}')
  if 'bias' in ld and not isinstance(ld['bias'], bool):
    raise ValueError(f'layer {i} ({ld["kind"]}): bias must be true or '
                     f'false, got {ld["bias"]!r}')
  if 'clip' in ld and (isinstance(ld['clip'], bool) or
                       not isinstance(ld['clip'], (int, float))):
    raise ValueError(f'layer {i} ({ld["kind"]}): clip must be a number, got '
                     f'{ld["clip"]!r}')
  if 'name' in ld and not isinstance(ld['name'], str):
    raise ValueError(f'layer {i} ({ld["kind"]}): name must be a string, got '
                     f'{ld["name"]!r}')
  fields = dict(ld)
  for key in ('in_shape', 'out_shape'):
    fields[key] = _shape(ld[key], f'layer {i} ({ld["kind"]}): {key}')
  return Layer(**fields)


def _layer_to_dict(l: Layer) -> dict[str, Any]:
  d = dataclasses.asdict(l)
  d['in_shape'] = list(l.in_shape)
  d['out_shape'] = list(l.out_shape)
  if not l.clip:
    del d['clip']  # documents of unclipped nets as before the field existed
  return d


def infer_shapes(input_shape: Shape, layers: Sequence[Layer],
                 edges: Sequence[tuple[int, int]]) -> list[tuple[Shape, Shape]]:
  """(in_shape, out_shape) of every layer, propagated from `input_shape`.

  A layer's in_shape is the shape it receives: the summed shape, or for
  concat its output shape. Edges must already be validated.
  """
  ins: list[list[int]] = [[] for _ in layers]
  for a, b in edges:
    ins[b].append(a)
  shapes: list[tuple[Shape, Shape]] = []
  for i, layer in enumerate(layers):
    srcs = [tuple(input_shape)] if i == 0 else [shapes[j][1] for j in ins[i]]
    try:
      out = infer_out_shape(layer, srcs, '')
    except ValueError:  # again, naming the layer (the label costs time)
      out = infer_out_shape(layer, srcs, _label(i, layer))
    in_shape = out if layer.kind == 'concat' else srcs[0]
    shapes.append((in_shape, out))
  return shapes


def _validate(arch: Arch, check_shapes: bool = True) -> None:
  n = len(arch.layers)
  if n == 0:
    raise ValueError('an Arch needs at least one layer')
  if len(arch.input_shape) != 3 or min(arch.input_shape) < 1:
    raise ValueError(f'input_shape must be (H, W, C) with positive sizes, got '
                     f'{arch.input_shape}')
  for i, layer in enumerate(arch.layers):
    if not isinstance(layer, Layer):
      raise ValueError(f'layer {i}: expected a Layer, got {type(layer)}')
    if layer.kind not in KINDS:
      raise ValueError(f'{_label(i, layer)}: unknown layer kind '
                       f'{layer.kind!r}; known kinds: {", ".join(KINDS)}')
  for a, b in arch.edges:
    if not (0 <= a < n and 0 <= b < n):
      missing = b if not 0 <= b < n else a
      raise ValueError(f'edge ({a}, {b}) refers to a missing layer {missing} '
                       f'(the arch has layers 0..{n - 1})')
    if a >= b:
      raise ValueError(f'edge ({a}, {b}) does not point forward: edges go '
                       'from a layer to a later one in execution order')
  has_in = {b for _, b in arch.edges}
  if 0 in has_in:
    raise ValueError(f'{_label(0, arch.layers[0])} reads the network input '
                     'and cannot have in-edges')
  for i in range(1, n):
    if i not in has_in:
      raise ValueError(f'{_label(i, arch.layers[i])} has no in-edges; only '
                       'layer 0 reads the network input')
  if not check_shapes:
    return
  shapes = infer_shapes(arch.input_shape, arch.layers, arch.edges)
  for i, (layer, (in_s, out_s)) in enumerate(zip(arch.layers, shapes)):
    if tuple(layer.in_shape) != in_s or tuple(layer.out_shape) != out_s:
      raise ValueError(
          f'{_label(i, layer)}: declared shapes {tuple(layer.in_shape)} -> '
          f'{tuple(layer.out_shape)} but its inputs give {in_s} -> {out_s}')


def build_arch(input_shape: Shape,
               layers: Sequence[Layer],
               edges: Sequence[tuple[int, int]],
               name: str = '') -> Arch:
  """An Arch whose layer shapes are inferred from `input_shape` and edges.

  Layers may be given with empty shapes; `infer_shapes` fills them in. This
  is how the zoo and the compression operators make architectures.
  """
  edges = tuple(sorted({(int(a), int(b)) for a, b in edges}))
  n = len(layers)
  for a, b in edges:
    if not (0 <= a < n and 0 <= b < n) or a >= b:
      # Let the full validator produce the message.
      return Arch(input_shape, tuple(layers), edges, name)
  shapes = infer_shapes(input_shape, layers, edges)
  layers = tuple(
      l if (l.in_shape,
            l.out_shape) == s else l.replace(in_shape=s[0], out_shape=s[1])
      for l, s in zip(layers, shapes))
  # The shapes were just inferred: validate the rest without inferring them
  # again (the samplers build thousands of candidates per search step).
  arch = object.__new__(Arch)
  for field, value in (('input_shape', tuple(input_shape)), ('layers', layers),
                       ('edges', edges), ('name', name)):
    object.__setattr__(arch, field, value)
  _validate(arch, check_shapes=False)
  return arch
