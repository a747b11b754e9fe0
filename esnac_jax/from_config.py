"""Turns a config into the objects it describes (teacher, sampler)."""

from __future__ import annotations

import ml_collections

from esnac_jax.arch import Arch, SamplerConfig, get_teacher
from esnac_jax.data import dataset_spec


def teacher_arch(config: ml_collections.ConfigDict) -> Arch:
  """The teacher Arch for the config's dataset and teacher section."""
  spec = dataset_spec(config.dataset)
  return get_teacher(config.teacher.name, num_classes=spec.num_classes,
                     in_channels=spec.channels, width=config.teacher.width,
                     input_size=spec.image_size)


def sampler_config(config: ml_collections.ConfigDict) -> SamplerConfig:
  s = config.search_space
  return SamplerConfig(remove_probs=tuple(s.remove_probs),
                       shrink_range=tuple(s.shrink_range),
                       skip_probs=tuple(s.skip_probs),
                       group_mode=s.group_mode)
