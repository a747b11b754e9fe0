"""Config files for a checkout: each imports its twin from esnac_jax.configs
(which an installed package ships), so `--config=configs/NAME.py` works
from here and your own configs can `from configs import common`."""
