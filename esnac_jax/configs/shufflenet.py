"""shufflenet teacher on CIFAR-100 (CIFAR-10 with --config.dataset=cifar10).

Search (trains or restores the teacher, 20 steps x 8 candidates, fully
trains the best 4), on a GPU or a Cloud TPU VM:

  python -m esnac_jax.main --config=configs/shufflenet.py --workdir=/tmp/shufflenet
  python -m esnac_jax.main --config=configs/shufflenet.py:faithful \
      --workdir=/tmp/shufflenet_faithful        # the original's choices

Expected cost, as the original's budget: 160 candidates x 10 distillation
epochs on 45K images (~1,600 student-epochs) + 4 x 300 final epochs
(~1,200) + the teacher if it has no checkpoint (200 epochs). Measured for
ResNet-18 at batch 128: 3.7 s per training step on a 2-core CPU (not
practical); see the README's benchmark section for accelerator figures.
The CIFAR data must be prepared once with TFDS (see README, Data).

Inspect the teacher and the prior over its compressed children (seconds):

  python -m esnac_jax.summary --config=configs/shufflenet.py --num_samples=8
"""

from esnac_jax.configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, preset='default')
  config = common.get_base_config(args.preset)
  config.teacher.name = 'shufflenet'
  return config
