"""The shared base config (esnac_jax.configs.common), for configs of your own."""

from esnac_jax.configs.common import (PRESETS, get_base_config,  # noqa: F401
                                      parse_arg)
