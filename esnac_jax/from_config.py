"""Turns a config into the objects it describes, checking every value.

Errors are ValueErrors that name the config key, so `main` can print them
as one line instead of a traceback.
"""

from __future__ import annotations

import ml_collections

from esnac_jax.arch import Arch, SamplerConfig, feature_dim, get_teacher
from esnac_jax.data import dataset_spec
from esnac_jax.search import (SEARCHERS, Constraints, ESNACConfig, N2NConfig,
                              Searcher)
from esnac_jax.search import make_searcher as _make_searcher
from esnac_jax.surrogate import SurrogateConfig
from esnac_jax.surrogate.transfer import EmbeddingError, load_embedding
from esnac_jax.train import LossConfig, OptimConfig, TrainConfig


def teacher_arch(config: ml_collections.ConfigDict) -> Arch:
  """The teacher Arch for the config's dataset and teacher section."""
  spec = dataset_spec(config.dataset)
  if not config.teacher.width > 0:
    raise ValueError(f'config.teacher.width must be > 0, got '
                     f'{config.teacher.width}')
  try:
    return get_teacher(config.teacher.name, num_classes=spec.num_classes,
                       in_channels=spec.channels, width=config.teacher.width,
                       input_size=spec.image_size)
  except ValueError as e:
    raise ValueError(f'config.teacher: {e}') from None


def sampler_config(config: ml_collections.ConfigDict) -> SamplerConfig:
  s = config.search_space
  return SamplerConfig(remove_probs=tuple(s.remove_probs),
                       shrink_range=tuple(s.shrink_range),
                       skip_probs=tuple(s.skip_probs),
                       group_mode=s.group_mode)


def train_config(section: ml_collections.ConfigDict,
                 name: str) -> TrainConfig:
  """A TrainConfig from a training section (teacher.train, distill, final)."""
  try:
    return TrainConfig(
        epochs=section.epochs, batch_size=section.batch_size,
        optim=OptimConfig(name=section.optimizer, lr=section.lr,
                          momentum=section.momentum,
                          weight_decay=section.weight_decay,
                          schedule=section.schedule,
                          boundaries=tuple(section.boundaries),
                          gamma=section.gamma),
        loss=LossConfig(section.loss, section.temperature,
                        section.label_weight),
        dtype=section.dtype)
  except ValueError as e:
    raise ValueError(f'config.{name}: {e}') from None


def constraints(config: ml_collections.ConfigDict) -> Constraints:
  c = config.constraints
  try:
    return Constraints(max_params=c.max_params or None,
                       max_flops=c.max_flops or None,
                       min_acc=c.min_acc or None)
  except ValueError as e:
    raise ValueError(f'config.{e}') from None


def esnac_config(config: ml_collections.ConfigDict) -> ESNACConfig:
  e, s = config.search.esnac, config.search.surrogate
  try:
    surrogate = SurrogateConfig(
        hidden=s.hidden, num_layers=s.num_layers, objective=s.objective,
        learn_hypers=s.learn_hypers, ls2=s.ls2, noise=s.noise,
        normalize_y=s.normalize_y, max_steps=s.max_steps,
        train_embedding=s.train_embedding)
  except ValueError as err:
    raise ValueError(f'config.search.surrogate: {err}') from None
  try:
    return ESNACConfig(
        surrogate=surrogate, features=e.features, shared_lstm=e.shared_lstm,
        pool_size=e.pool_size, pool_per_kernel=e.pool_per_kernel,
        mutate_frac=e.mutate_frac, parents=e.parents,
        acquisition=e.acquisition, subset_prob=e.subset_prob,
        teacher_anchor=e.teacher_anchor, warm_start=e.warm_start)
  except ValueError as err:
    raise ValueError(f'config.search.esnac: {err}') from None


def check_budget(config: ml_collections.ConfigDict) -> None:
  s = config.search
  for key, low in (('steps', 1), ('candidates_per_step', 1)):
    if s[key] < low:
      raise ValueError(f'config.search.{key} must be >= {low}, got {s[key]}')
  if config.final.top_n < 0:
    raise ValueError(f'config.final.top_n must be >= 0 (0 skips final '
                     f'training), got {config.final.top_n}')


def make_searcher(config: ml_collections.ConfigDict,
                  teacher: Arch) -> Searcher:
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
    kwargs['config'] = N2NConfig(stage1_asks=stage1, hidden=n.hidden,
                                 num_layers=n.num_layers,
                                 removal_lr=n.removal_lr,
                                 shrink_lr=n.shrink_lr)
  return _make_searcher(name, teacher, sampler_config(config), config.seed,
                        constraints(config), **kwargs)


def embedding_meta(config: ml_collections.ConfigDict, teacher: Arch,
                   evaluations: int) -> dict:
  """What a saved embedding records: the settings reuse must match, and
  where it came from."""
  s, features = config.search.surrogate, config.search.esnac.features
  return {'hidden': s.hidden, 'num_layers': s.num_layers,
          'features': features, 'feature_dim': feature_dim(features),
          'teacher': teacher.name, 'dataset': config.dataset,
          'evaluations': evaluations}
