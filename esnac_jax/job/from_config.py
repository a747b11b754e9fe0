"""Turns a config into the objects it describes, checking every value.

Errors are ValueErrors that name the config key, so `main` can print them
as one line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, TypeVar

import ml_collections

from esnac_jax import paths
from esnac_jax.arch import Arch, SamplerConfig, feature_dim, get_teacher
from esnac_jax.data import Dataset, DatasetSpec, dataset_spec, load_dataset
from esnac_jax.search import (SEARCHERS, Constraints, ESNACConfig, N2NConfig,
                              Searcher)
from esnac_jax.search import make_searcher as _make_searcher
from esnac_jax.surrogate import SurrogateConfig
from esnac_jax.surrogate.transfer import EmbeddingError, load_embedding
from esnac_jax.train import LossConfig, OptimConfig, TrainConfig

T = TypeVar('T')


def teacher_arch(config: ml_collections.ConfigDict) -> Arch:
  """The teacher Arch for the config's dataset and teacher section.

  teacher.arch, when set, is the path of an Arch JSON document (as
  Arch.to_json writes it). Otherwise teacher.name is a zoo name or
  'module:function', a builder importable from the working directory or
  PYTHONPATH that is called with the dataset's input_size, in_channels and
  num_classes (and width, if it takes one) and returns an Arch.
  """
  spec = config_spec(config)
  if not config.teacher.width > 0:
    raise ValueError(f'config.teacher.width must be > 0, got '
                     f'{config.teacher.width}')
  name = config.teacher.name
  document = _teacher_document(config)
  try:
    if document:
      key = 'teacher.onnx' if config.teacher.get('onnx') else 'teacher.arch'
      return _document_teacher(document, spec, config.teacher.width, key)
    if ':' in name:
      return _built_teacher(name, spec, config.teacher.width)
    return get_teacher(name,
                       num_classes=spec.num_classes,
                       in_channels=spec.channels,
                       width=config.teacher.width,
                       input_size=spec.image_size)
  except ValueError as e:
    raise ValueError(f'config.teacher: {e}') from None


def config_spec(config: ml_collections.ConfigDict) -> DatasetSpec:
  """The spec of the config's dataset, at its image_size."""
  return dataset_spec(config.dataset, config.data_dir or None,
                      config.get('image_size', 0))


def config_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """The config's dataset, loaded, at its image_size."""
  return load_dataset(config.dataset, config.data_dir or None,
                      config.get('image_size', 0))


def is_onnx(path: str) -> bool:
  return str(path).lower().endswith('.onnx')


def _teacher_document(config: ml_collections.ConfigDict) -> str:
  """teacher.arch or teacher.onnx (one of them at most)."""
  arch, onnx = config.teacher.get('arch', ''), config.teacher.get('onnx', '')
  if arch and onnx:
    raise ValueError(f'config.teacher.arch={arch} and teacher.onnx={onnx} '
                     'both describe the teacher; give one')
  if onnx and not is_onnx(onnx):
    raise ValueError(f'config.teacher.onnx={onnx} must name a .onnx file')
  return arch or onnx


def teacher_weights_path(config: ml_collections.ConfigDict) -> str:
  """Where the teacher's trained weights come from: teacher.weights, else
  an ONNX teacher document (which holds them), else '' (train it)."""
  weights = config.teacher.get('weights', '')
  document = _teacher_document(config)
  return weights or (document if is_onnx(document) else '')


def _document_teacher(path: str,
                      spec: Any,
                      width: float,
                      key: str = 'teacher.arch') -> Arch:
  """The Arch of the JSON document (as Arch.to_json writes) or ONNX model
  at `path`, given as config `key`."""
  if width != 1.0:
    raise ValueError(f'{key}={path} is used as written; leave '
                     f'config.teacher.width at 1.0 (got {width})')
  if is_onnx(path):
    from esnac_jax.models.from_onnx import load_onnx
    arch, _ = load_onnx(path)
    _check_fits(arch, spec, f'{key}={path}')
    return arch
  try:
    text = paths.path(path).read_text()
  except OSError as e:
    raise ValueError(f'{key}={path} cannot be read: '
                     f'{e.strerror or e}') from None
  try:
    arch = Arch.from_json(text)
  except ValueError as e:
    raise ValueError(f'{key}={path}: {e}') from None
  _check_fits(arch, spec, f'{key}={path}')
  return arch


def _check_fits(arch: Arch, spec: Any, what: str) -> None:
  want = ((spec.image_size, spec.image_size, spec.channels),
          (spec.num_classes,))
  if (arch.input_shape, arch.output_shape) != want:
    raise ValueError(f'{what} describes a network from {arch.input_shape} '
                     f'to {arch.output_shape}; dataset {spec.name!r} needs '
                     f'{want[0]} to {want[1]}')


def _load_builder(name: str) -> Any:
  """The function of a teacher builder 'module:function'."""
  module_name, _, attr = name.partition(':')
  try:
    return getattr(importlib.import_module(module_name), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f'teacher builder {name!r} cannot be loaded '
                     f'({type(e).__name__}: {e}); give module:function, '
                     'importable from the working directory or PYTHONPATH')


def builder_takes_width(name: str) -> bool:
  """Whether a teacher builder 'module:function' takes a width (True for
  zoo names and for builders that cannot be loaded: _built_teacher names
  those)."""
  if ':' not in name:
    return True
  try:
    return 'width' in inspect.signature(_load_builder(name)).parameters
  except (ValueError, TypeError):  # not loadable, or no signature
    return True


def _built_teacher(name: str, spec: Any, width: float) -> Arch:
  """The Arch a user's builder 'module:function' returns for `spec`."""
  fn = _load_builder(name)
  kwargs = dict(input_size=spec.image_size,
                in_channels=spec.channels,
                num_classes=spec.num_classes)
  if 'width' in inspect.signature(fn).parameters:
    kwargs['width'] = width
  elif width != 1.0:
    raise ValueError(f'teacher builder {name!r} takes no width; leave '
                     f'config.teacher.width at 1.0 (got {width})')
  try:
    inspect.signature(fn).bind(**kwargs)
  except TypeError as e:
    raise ValueError(f'teacher builder {name!r} must accept input_size, '
                     f'in_channels and num_classes ({e})') from None
  try:
    arch = fn(**kwargs)
  except Exception as e:  # noqa: BLE001  (the user's code: one line)
    raise ValueError(f'teacher builder {name!r} raised {type(e).__name__}: '
                     f'{e}') from e
  if not isinstance(arch, Arch):
    raise ValueError(f'teacher builder {name!r} returned '
                     f'{type(arch).__name__}, not an Arch')
  _check_fits(arch, spec, f'teacher builder {name!r}')
  return arch


def build(cls: type[T], section: ml_collections.ConfigDict, name: str,
          **values: Any) -> T:
  """The library dataclass `cls` from the config section that mirrors its
  fields (lists become tuples); `values` replace fields; errors name the
  section."""
  kwargs = {}
  for f in dataclasses.fields(cls):
    if f.name in values:
      kwargs[f.name] = values[f.name]
    elif f.name in section:
      v = section[f.name]
      kwargs[f.name] = tuple(v) if isinstance(v, list) else v
  try:
    return cls(**kwargs)
  except ValueError as e:
    raise ValueError(f'config.{name}: {e}') from None


def sampler_config(config: ml_collections.ConfigDict) -> SamplerConfig:
  return build(SamplerConfig, config.search_space, 'search_space')


def train_config(section: ml_collections.ConfigDict,
                 name: str,
                 feed: str = 'auto') -> TrainConfig:
  """A TrainConfig from a training section (teacher.train, distill, final);
  `feed` is config.data_feed."""
  try:
    return TrainConfig(epochs=section.epochs,
                       batch_size=section.batch_size,
                       optim=OptimConfig(name=section.optimizer,
                                         lr=section.lr,
                                         momentum=section.momentum,
                                         weight_decay=section.weight_decay,
                                         schedule=section.schedule,
                                         boundaries=tuple(section.boundaries),
                                         gamma=section.gamma),
                       loss=LossConfig(section.loss, section.temperature,
                                       section.label_weight),
                       dtype=section.dtype,
                       checkpoint_every_s=section.get('checkpoint_every_s',
                                                      60.0),
                       halving=tuple(section.get('halving', ())),
                       feed=feed)
  except ValueError as e:
    raise ValueError(f'config.{name}: {e}') from None


def constraints(config: ml_collections.ConfigDict) -> Constraints:
  c = config.constraints
  try:
    return Constraints(max_params=c.max_params or None,
                       max_flops=c.max_flops or None,
                       min_acc=c.min_acc or None,
                       objective=config.search.get('objective', 'reward'))
  except ValueError as e:
    raise ValueError(f'config.{e}') from None


def esnac_config(config: ml_collections.ConfigDict) -> ESNACConfig:
  surrogate = build(SurrogateConfig, config.search.surrogate,
                    'search.surrogate')
  return build(ESNACConfig,
               config.search.esnac,
               'search.esnac',
               surrogate=surrogate)


def check_budget(config: ml_collections.ConfigDict) -> None:
  s = config.search
  for key, low in (('steps', 1), ('candidates_per_step', 1)):
    if s[key] < low:
      raise ValueError(f'config.search.{key} must be >= {low}, got {s[key]}')
  if config.final.top_n < 0:
    raise ValueError(f'config.final.top_n must be >= 0 (0 skips final '
                     f'training), got {config.final.top_n}')
  final_indices(config)


def final_indices(config: ml_collections.ConfigDict) -> list[int]:
  """config.final.indices ('12,40': candidates of results.json to train
  fully as well), each checked against the search's size."""
  text = config.final.get('indices', '')
  if isinstance(text, int) and not isinstance(text, bool):
    text = str(text)
  if not isinstance(text, str):
    raise ValueError(f'config.final.indices={text!r} must be candidate '
                     "indices separated by commas, e.g. '12,40'")
  total = config.search.steps * config.search.candidates_per_step
  out = []
  for part in filter(None, (p.strip() for p in text.split(','))):
    if not part.isdigit():
      raise ValueError(f'config.final.indices={text!r}: {part!r} is not a '
                       "candidate index (e.g. '12,40', as in results.json)")
    if int(part) >= total:
      raise ValueError(f'config.final.indices={text!r}: candidate {part} '
                       f'does not exist; the search evaluates {total} '
                       f'(indices 0..{total - 1})')
    out.append(int(part))
  return list(dict.fromkeys(out))


def make_searcher(config: ml_collections.ConfigDict, teacher: Arch) -> Searcher:
  """The config's searcher for this teacher (state empty)."""
  name = config.search.searcher
  if name not in SEARCHERS:
    raise ValueError(f'unknown searcher {name!r} (config.search.searcher); '
                     f'known searchers: {", ".join(SEARCHERS)}')
  kwargs = {}
  if name == 'esnac':
    kwargs['config'] = esnac_config(config)
    if config.search.surrogate.init_from:
      try:
        kwargs['embedding'], _ = load_embedding(
            config.search.surrogate.init_from, kwargs['config'].surrogate,
            kwargs['config'].features)
      except EmbeddingError as e:
        raise ValueError(f'config.search.surrogate.init_from: {e}') from None
  elif name == 'evolution':
    kwargs.update(population=config.search.evolution.population,
                  tournament=config.search.evolution.tournament)
  elif name == 'n2n':
    n = config.search.n2n
    stage1 = n.stage1_asks or max(1, config.search.steps // 2)
    kwargs['config'] = build(N2NConfig, n, 'search.n2n', stage1_asks=stage1)
  return _make_searcher(name, teacher, sampler_config(config), config.seed,
                        constraints(config), **kwargs)


def embedding_meta(config: ml_collections.ConfigDict, teacher: Arch,
                   evaluations: int) -> dict:
  """What a saved embedding records: the settings reuse must match, and
  where it came from."""
  s, features = config.search.surrogate, config.search.esnac.features
  return {
      'hidden': s.hidden,
      'num_layers': s.num_layers,
      'lstm_impl': s.lstm_impl,
      'features': features,
      'feature_dim': feature_dim(features),
      'teacher': teacher.name,
      'dataset': config.dataset,
      'evaluations': evaluations
  }
