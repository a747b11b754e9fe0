"""Arch -> Flax module (materialised path) and weight inheritance."""

from esnac_jax.models.inherit import inherit, kept_channels
from esnac_jax.models.network import ArchNet, count_params, init_variables, make_model

__all__ = [
    'ArchNet', 'count_params', 'init_variables', 'make_model', 'inherit',
    'kept_channels'
]
