"""resnet18 teacher on CIFAR-100 (CIFAR-10 with --config.dataset=cifar10).

The config itself is esnac_jax/configs/resnet18.py (shipped with the package).
"""

from esnac_jax.configs.resnet18 import get_config  # noqa: F401
