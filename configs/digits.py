"""Offline default: a narrow ResNet-18 on scikit-learn's 8x8 digits.

The config itself is esnac_jax/configs/digits.py (shipped with the package).
"""

from esnac_jax.configs.digits import get_config  # noqa: F401
