"""Settings every config shares; each teacher config overrides a few.

Faithful values follow the original ESNAC (options.py, seed 127).
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 127
  c.dataset = 'cifar100'        # cifar10 | cifar100 | digits

  c.teacher = ml_collections.ConfigDict()
  c.teacher.name = 'resnet18'   # vgg19 | resnet18 | resnet34 | shufflenet
  #                               | mobilenetv2
  c.teacher.width = 1.0         # channel multiplier

  # The compression operators' sampling distributions (ar_p1/ar_p2/ar_p3).
  c.search_space = ml_collections.ConfigDict()
  c.search_space.remove_probs = (0.3, 0.4, 0.5, 0.6, 0.7)
  c.search_space.shrink_range = (0.0, 1.0)
  c.search_space.skip_probs = (0.003, 0.005, 0.01, 0.03, 0.05)
  c.search_space.group_mode = 'by_width'   # by_width (original) | fine
  return c


def parse_arg(arg, **defaults) -> ml_collections.ConfigDict:
  """'key=value,flag' config arguments, big_vision style: file.py:runlocal."""
  out = ml_collections.ConfigDict(defaults)
  for part in (arg or '').split(','):
    if not part:
      continue
    key, _, value = part.partition('=')
    if key not in out:
      raise ValueError(f'unknown config argument {key!r}; known: '
                       f'{", ".join(sorted(out))}')
    out[key] = type(defaults[key])(value) if value else True
  return out
