"""The embeddable ESNAC kernel: BiLSTM embedding + GP, pure and batched.

Needs nothing from esnac_jax's architecture types: any [N, L, F] feature
sequences with masks work.
"""

from esnac_jax.surrogate.acquisition import (KINDS as ACQUISITIONS,
                                             expected_improvement, select_batch,
                                             thompson, upper_confidence_bound)
from esnac_jax.surrogate.gp import Hypers
from esnac_jax.surrogate.history import bucket_size, pad_history
from esnac_jax.surrogate.kernel import (FitInfo, SurrogateConfig, embed, fit,
                                        fit_many, fit_shared, gather_subsets,
                                        hypers, init, init_shared, objective,
                                        posterior, posteriors, score)

__all__ = [
    'ACQUISITIONS',
    'expected_improvement',
    'select_batch',
    'thompson',
    'upper_confidence_bound',
    'Hypers',
    'FitInfo',
    'SurrogateConfig',
    'bucket_size',
    'embed',
    'fit',
    'fit_many',
    'fit_shared',
    'gather_subsets',
    'hypers',
    'init',
    'init_shared',
    'objective',
    'pad_history',
    'posterior',
    'posteriors',
    'score',
]
