"""The architecture value, the teacher zoo, compression operators, features.

Pure Python and NumPy: nothing here traces JAX.
"""

from esnac_jax.arch.builder import INPUT, ArchBuilder
from esnac_jax.arch.core import KINDS, Arch, Layer, build_arch, infer_shapes
from esnac_jax.arch.features import FEATURE_KINDS, batch_features, feature_dim, features
from esnac_jax.arch.operators import (SamplerConfig, add_skips, check_child,
                                      compression_ratio, mutate, remove_layers,
                                      removable_layers, restore_layer, sample,
                                      shrink, shrunk_width, skip_pairs)
from esnac_jax.arch.widths import WidthGroup, analyse, width_groups
from esnac_jax.arch.zoo import TEACHERS, get_teacher

__all__ = [
    'INPUT',
    'ArchBuilder',
    'KINDS',
    'Arch',
    'Layer',
    'build_arch',
    'infer_shapes',
    'FEATURE_KINDS',
    'batch_features',
    'feature_dim',
    'features',
    'SamplerConfig',
    'add_skips',
    'check_child',
    'compression_ratio',
    'mutate',
    'remove_layers',
    'removable_layers',
    'restore_layer',
    'sample',
    'shrink',
    'shrunk_width',
    'skip_pairs',
    'WidthGroup',
    'analyse',
    'width_groups',
    'TEACHERS',
    'get_teacher',
]
