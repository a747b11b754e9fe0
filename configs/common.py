"""The shared base config (esnac_jax.configs.common), for configs of your own."""

# Re-exported for configs of your own.
from esnac_jax.configs.common import PRESETS  # noqa: F401
from esnac_jax.configs.common import get_base_config  # noqa: F401
from esnac_jax.configs.common import parse_arg  # noqa: F401
