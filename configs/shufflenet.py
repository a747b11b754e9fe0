"""ShuffleNet (original groups=2 variant) teacher on CIFAR-100 (CIFAR-10 with --config.dataset=cifar10).

Inspect the teacher and the prior over its compressed children (seconds):

  python -m esnac_jax.summary --config=configs/shufflenet.py --num_samples=8

The search itself runs on GPUs/TPUs; its command and cost are added here
with the search entry point.
"""

from configs import common


def get_config(arg=None):
  del arg
  config = common.get_base_config()
  config.teacher.name = 'shufflenet'
  return config
