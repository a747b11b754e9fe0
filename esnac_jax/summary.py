"""Prints a teacher's summary and a handful of sampled compressed children.

  python -m esnac_jax.summary --config=configs/digits.py --num_samples=8
  python -m esnac_jax.summary --config=configs/resnet18.py --layers
  python -m esnac_jax.summary --config=configs/vgg19.py \
      --config.search_space.group_mode=fine --json=/tmp/samples.json
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags
import numpy as np

from esnac_jax.arch import compression_ratio, mutate, sample, width_groups
from esnac_jax.arch.operators import removable_layers, skip_pairs
from esnac_jax.job.from_config import sampler_config, teacher_arch

_CONFIG = config_flags.DEFINE_config_file('config',
                                          None,
                                          'Config file.',
                                          lock_config=True)
_NUM = flags.DEFINE_integer('num_samples', 6, 'Random children to print.')
_LAYERS = flags.DEFINE_bool('layers', False, "Print the teacher's layers.")
_JSON = flags.DEFINE_string('json', None, 'Write teacher and samples here.')


def describe(config, num_samples: int, show_layers: bool = False) -> dict:
  teacher = teacher_arch(config)
  cfg = sampler_config(config)
  rng = np.random.default_rng(config.seed)
  groups = width_groups(teacher, teacher, cfg.group_mode)
  print(teacher.summary().splitlines()[0] if not show_layers else teacher.
        summary())
  print(f'  removable layers: {len(removable_layers(teacher))}, skip pairs: '
        f'{len(skip_pairs(teacher))}, width groups ({cfg.group_mode}): '
        f'{len(groups)} {[g.teacher_width for g in groups]}')
  print(f'{"#":>3} {"params":>12} {"c":>7} {"times":>7} {"MFLOPs":>9} '
        f'{"removed":>8} {"+skips":>7}  widths')
  rows = []
  for k in range(num_samples):
    child = sample(teacher, rng, cfg)
    if k % 2:  # show that mutations of a child are children too
      child = mutate(child, teacher, rng, cfg)
    c = compression_ratio(child, teacher)
    removed = sum(a.kind == 'identity' and t.kind != 'identity'
                  for a, t in zip(child.layers, teacher.layers))
    skips = len(child.edges) - len(teacher.edges)
    widths = [g.width for g in width_groups(child, teacher, cfg.group_mode)]
    print(f'{k:3d} {child.num_params:12,d} {c:7.4f} {1 / (1 - c):6.2f}x '
          f'{child.flops / 1e6:9.2f} {removed:8d} {skips:7d}  '
          f'{widths if len(widths) <= 8 else widths[:8] + ["..."]}')
    rows.append({
        'params': child.num_params,
        'flops': child.flops,
        'compression': c,
        'arch': child.to_dict()
    })
  return {
      'teacher': teacher.to_dict(),
      'teacher_params': teacher.num_params,
      'samples': rows
  }


def main(argv):
  del argv
  if _CONFIG.value is None:
    raise app.UsageError(
        '--config is required, e.g. --config=configs/digits.py')
  try:
    out = describe(_CONFIG.value, _NUM.value, _LAYERS.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(out, f)
    print(f'wrote {_JSON.value}')


if __name__ == '__main__':
  app.run(main)
