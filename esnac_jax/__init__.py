"""esnac_jax: ESNAC neural architecture compression in JAX/Flax."""

__version__ = '0.1.0'
