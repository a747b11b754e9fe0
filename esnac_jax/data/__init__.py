"""Datasets: shapes and class counts now; loaders arrive with training."""

from esnac_jax.data.specs import DATASETS, DatasetSpec, dataset_spec

__all__ = ['DATASETS', 'DatasetSpec', 'dataset_spec']
