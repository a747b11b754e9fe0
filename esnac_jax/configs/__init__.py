"""The shipped configs: `--config=configs/NAME.py` in a checkout (thin
files that import these), the same path or just `NAME.py` anywhere once
installed; `common.get_base_config` is the base for configs of your own."""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
