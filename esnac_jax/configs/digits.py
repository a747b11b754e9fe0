"""Offline default: a narrow ResNet-18 on scikit-learn's 8x8 digits.

Runs anywhere with no download: trains the teacher (15 epochs), searches
6 steps x 8 candidates (48 evaluated, 4 distillation epochs each), fully
trains the best 2 (20 epochs), tests the chosen one once. About 2-3
minutes on a 2-core CPU:

  python -m esnac_jax.main --config=configs/digits.py --workdir=/tmp/digits

  python -m esnac_jax.main --config=configs/digits.py:faithful \
      --workdir=/tmp/digits_faithful   # the original's search choices
"""

import ml_collections

from esnac_jax.configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, preset='default')
  config = common.get_base_config(args.preset)
  config.dataset = 'digits'
  config.teacher.name = 'resnet18'
  config.teacher.width = 0.25  # stages of 16/32/64/128 channels
  config.teacher.train.update(epochs=15, batch_size=64, lr=0.05)

  config.search.steps = 6
  config.distill.update(epochs=4, batch_size=64)
  config.final.update(top_n=2, epochs=20, batch_size=64, boundaries=(10, 15))

  # bench.compare: 5 methods x 5 seeds x 160 candidates = 4,000 distillations
  # on 2 CPU cores within the hour. A half-width teacher (8/16/32/64
  # channels); one distillation epoch at a higher rate; every candidate on
  # the masked path (one compiled program for all of them, where the
  # materialised path compiles each child for 3-5 s); surrogate fits capped
  # at 30 steps (the default's often run to 100 here, ~0.1 s each); the
  # faithful surrogate at the default's LSTM size, 125 prior samples per
  # kernel and 15 fit steps, about what the original's stopping rule gave
  # (the full-size one takes ~100 s per search step on this CPU).
  config.compare.override = ml_collections.ConfigDict(
      dict(teacher=dict(width=0.125),
           distill=dict(epochs=1, batch_size=128, lr=3e-3, path='masked'),
           search=dict(surrogate=dict(max_steps=30))))
  config.compare.faithful.update(hidden=32,
                                 num_layers=2,
                                 pool_size=125,
                                 max_steps=15)
  return config
