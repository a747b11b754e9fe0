"""Offline default: a narrow ResNet-18 on scikit-learn's 8x8 digits.

Runs anywhere with no download. For now it prints the teacher and sampled
children (about 2 s on a 2-core CPU):

  python -m esnac_jax.summary --config=configs/digits.py
"""

from configs import common


def get_config(arg=None):
  del arg
  config = common.get_base_config()
  config.dataset = 'digits'
  config.teacher.name = 'resnet18'
  config.teacher.width = 0.25   # stages of 16/32/64/128 channels
  return config
