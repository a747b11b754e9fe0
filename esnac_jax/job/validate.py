"""One pass over the whole config before any data is loaded or anything
trained: every enumerated value, every number's range (including sizes
certain to exhaust memory or time), constraints the sampler can meet, and
a workdir that holds another config's search.

Each problem is a ValueError whose one-line message names the key, the
value and what is allowed; `check` returns the objects the job runs with.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import jax
import ml_collections
import numpy as np

from esnac_jax import paths
from esnac_jax.arch import Arch, sample
from esnac_jax.job import from_config, xla_cache
from esnac_jax.data.device_feed import resolve_feed
from esnac_jax.job.evaluate import resolve_path
from esnac_jax.models.inherit import BN_STATS, CHANNEL_SELECT
from esnac_jax.models.weights import load_variables
from esnac_jax.search import Constraints, Searcher
from esnac_jax.train import TrainConfig

PRESETS = ('default', 'faithful')
# Sizes beyond these cannot finish: a search step scores every pool
# candidate on the host (~2 ms each), a kernel is a few thousand units.
MAX_POOL = 100_000
MAX_CANDIDATES_PER_STEP = 4096
MAX_STEPS = 100_000
MAX_HIDDEN = 4096
MAX_LSTM_LAYERS = 16
MAX_SURROGATE_FIT_STEPS = 100_000
# Children drawn to check that the constraints admit any.
CONSTRAINT_DRAWS = 1000


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a checked config runs with."""
  teacher: Arch
  searcher: Searcher
  teacher_train: TrainConfig
  distill: TrainConfig
  final: TrainConfig
  constraints: Constraints
  path: str  # the resolved distillation path
  config_dict: dict  # the config as JSON, as checkpoints record it
  teacher_weights: dict | None = None  # config.teacher.weights, loaded


def check(config: ml_collections.ConfigDict,
          workdir: str | None = None,
          memory_bytes: int | None = None) -> Plan:
  """Checks `config` (and the search in `workdir`, if any); raises a
  ValueError with one line for the first problem. `memory_bytes` is the
  memory one device offers (default: measured)."""
  _check_scalars(config)
  spec = from_config.config_spec(config)
  teacher = from_config.teacher_arch(config)
  from_config.check_budget(config)
  _check_search_sizes(config)
  trains = {}
  for name, section in (('teacher.train', config.teacher.train),
                        ('distill', config.distill), ('final', config.final)):
    trains[name] = from_config.train_config(section, name,
                                            config.get('data_feed', 'auto'))
    if section.batch_size > spec.train_size:
      raise ValueError(
          f'config.{name}.batch_size={section.batch_size} is larger than '
          f'the {spec.name} training split ({spec.train_size} images); use '
          f'at most {spec.train_size}')
  _check_enum('distill.select', config.distill.select, CHANNEL_SELECT)
  _check_enum('distill.bn_stats', config.distill.bn_stats, BN_STATS)
  path = resolve_path(config.distill.path, teacher, config.distill.select,
                      jax.default_backend(), trains['distill'].dtype,
                      trains['distill'].batch_size)
  if jax.process_count() > 1 and path != 'masked_vmap':
    raise ValueError(
        f'a run over {jax.process_count()} processes scores candidates on '
        f'the masked_vmap path (the candidate axis over every device); '
        f'distill.path={config.distill.path!r} resolved to {path!r}: set '
        "--config.distill.path=masked_vmap")
  _check_memory(config, teacher, path, memory_bytes)
  weights = None
  weights_path = from_config.teacher_weights_path(config)
  if weights_path:
    try:
      weights = load_variables(weights_path, teacher)
    except ValueError as e:
      raise ValueError(f'config.teacher.weights: {e}') from None
  constraints = from_config.constraints(config)
  _check_stop_hopeless(config.distill.get('stop_hopeless', False), constraints,
                       trains['distill'].epochs)
  searcher = from_config.make_searcher(config, teacher)
  _check_satisfiable(constraints, searcher, config.seed)
  config_dict = json.loads(config.to_json())
  if workdir is not None:
    check_saved_search(config_dict, workdir)
  return Plan(teacher, searcher, trains['teacher.train'], trains['distill'],
              trains['final'], constraints, path, config_dict, weights)


def _check_stop_hopeless(value, constraints: Constraints, epochs: int) -> None:
  if not isinstance(value, bool):
    raise ValueError(f'config.distill.stop_hopeless={value!r} must be True '
                     'or False')
  if value and epochs < 2:
    raise ValueError(f'config.distill.stop_hopeless=True stops candidates '
                     f'after an epoch before the last; with distill.epochs='
                     f'{epochs} there is none: set distill.epochs >= 2')
  if value and constraints.pareto_axis is not None:
    raise ValueError(
        f'config.distill.stop_hopeless=True needs one score to beat; with '
        f'search.objective={constraints.objective!r} every size counts: use '
        "the 'reward' or 'target' objective, or distill.halving")


def _check_enum(key: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f'config.{key}={value!r} is not one of '
                     f'{", ".join(map(str, allowed))}')


def _check_scalars(config: ml_collections.ConfigDict) -> None:
  seed = config.seed
  if isinstance(seed, bool) or not isinstance(seed, int) or \
      not 0 <= seed < 2**32:
    raise ValueError(f'config.seed={seed!r} must be an integer in '
                     f'[0, {2**32 - 1}]')
  _check_enum('preset', config.get('preset', 'default'), PRESETS)
  xla_cache.folder(config.get('compile_cache', 'auto'))
  try:
    resolve_feed(config.get('data_feed', 'auto'), jax.default_backend(),
                 jax.process_count())
  except ValueError as e:
    raise ValueError(f'config.{e}') from None
  if not isinstance(config.data_dir, str):
    raise ValueError(f'config.data_dir={config.data_dir!r} must be a path '
                     "string ('' for TFDS's default)")
  width = config.teacher.width
  if isinstance(width, bool) or not isinstance(width, (int, float)) or \
      not math.isfinite(width) or not width > 0:
    raise ValueError(f'config.teacher.width={width!r} must be a positive '
                     'channel multiplier, e.g. 0.25 or 1.0')


def _check_search_sizes(config: ml_collections.ConfigDict) -> None:
  s = config.search
  limits = (('search.steps', s.steps, MAX_STEPS),
            ('search.candidates_per_step', s.candidates_per_step,
             MAX_CANDIDATES_PER_STEP), ('search.esnac.pool_size',
                                        s.esnac.pool_size, MAX_POOL),
            ('search.surrogate.hidden', s.surrogate.hidden, MAX_HIDDEN),
            ('search.surrogate.num_layers', s.surrogate.num_layers,
             MAX_LSTM_LAYERS), ('search.surrogate.max_steps',
                                s.surrogate.max_steps, MAX_SURROGATE_FIT_STEPS))
  for key, value, top in limits:
    if value > top:
      raise ValueError(f'config.{key}={value} is beyond what a search can '
                       f'run (at most {top:,})')
  pool = s.esnac.pool_size * (s.candidates_per_step
                              if s.esnac.pool_per_kernel else 1)
  if s.searcher == 'esnac' and pool > MAX_POOL:
    raise ValueError(f'config.search.esnac.pool_size={s.esnac.pool_size} per '
                     f'kernel x {s.candidates_per_step} kernels = {pool:,} '
                     f'candidates a step is beyond what a step can score (at '
                     f'most {MAX_POOL:,})')
  evo = s.evolution
  if s.searcher == 'evolution' and not 1 <= evo.tournament <= evo.population:
    raise ValueError(f'config.search.evolution.tournament={evo.tournament} '
                     f'must be in [1, population={evo.population}]')


def train_step_bytes(arch: Arch, batch_size: int, copies: int = 1) -> int:
  """A lower bound on the memory of one float32 training step of `arch`:
  weights, gradients and two optimizer moments, and every layer's output
  kept for the backward pass, for `copies` networks trained at once."""
  activations = sum(math.prod(l.out_shape) for l in arch.layers)
  return copies * 4 * (4 * arch.num_params + 2 * batch_size * activations)


def device_memory_bytes() -> int:
  """The memory of one local device: the accelerator's, or the host's."""
  device = jax.local_devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # backends without memory stats
    stats = {}
  if stats.get('bytes_limit'):
    return int(stats['bytes_limit'])
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def _check_memory(config: ml_collections.ConfigDict, teacher: Arch, path: str,
                  memory_bytes: int | None) -> None:
  available = memory_bytes or device_memory_bytes()
  k = config.search.candidates_per_step if path == 'masked_vmap' else 1
  for key, batch, copies, what in (
      ('teacher.train.batch_size', config.teacher.train.batch_size, 1,
       'training the teacher'),
      ('distill.batch_size', config.distill.batch_size, k + 1,
       f'distilling {k} candidate(s) on the {path} path')):
    need = train_step_bytes(teacher, batch, copies)
    if need > available:
      raise ValueError(
          f'{what} needs at least {need / 2**30:,.1f} GiB (teacher '
          f'{teacher.num_params:,} params at config.teacher.width='
          f'{config.teacher.width}, config.{key}={batch}) but a device here '
          f'has {available / 2**30:,.1f} GiB; lower the width or the batch '
          'size')


def _check_satisfiable(constraints: Constraints, searcher: Searcher,
                       seed: int) -> None:
  """A quick draw: do the constraints admit any child the sampler makes?"""
  if constraints.max_params is None and constraints.max_flops is None:
    return
  teacher = searcher.teacher
  if constraints.admits(teacher):
    return
  rng = np.random.default_rng(seed)
  enc = searcher.encoder
  if enc is not None:  # the whole draw at once, as arrays
    pool = enc.sample(rng, CONSTRAINT_DRAWS, searcher.sampler)
    params, flops = enc.num_params(pool), enc.flops(pool)
    ok = np.ones(len(pool), bool)
    if constraints.max_params is not None:
      ok &= params <= constraints.max_params
    if constraints.max_flops is not None:
      ok &= flops <= constraints.max_flops
    if ok.any():
      return
    k = int(np.lexsort((flops, params))[0])
    smallest = (int(params[k]), int(flops[k]))
  else:
    smallest = None
    for _ in range(CONSTRAINT_DRAWS):
      a = sample(teacher, rng, searcher.sampler)
      if constraints.admits(a):
        return
      smallest = min(smallest or (a.num_params, a.flops),
                     (a.num_params, a.flops))
  limits = ', '.join(f'config.constraints.{k}={getattr(constraints, k):,}'
                     for k in ('max_params', 'max_flops')
                     if getattr(constraints, k) is not None)
  raise ValueError(
      f'{limits} admits none of {CONSTRAINT_DRAWS} random children of the '
      f'teacher ({teacher.num_params:,} params, {teacher.flops:,} FLOPs; '
      f'smallest drawn: {smallest[0]:,} params, {smallest[1]:,} '
      'FLOPs); raise the limit or widen config.search_space')


def check_saved_search(config_dict: dict, workdir: str) -> None:
  """A workdir whose search was made with another config is refused now,
  not after the data is loaded and the teacher restored."""
  from esnac_jax.job.checkpoint import SearchCheckpointer
  from esnac_jax.job.loop import MAY_CHANGE, check_config
  directory = paths.join(workdir, 'search')
  if not paths.path(directory).is_dir():
    return
  saved = SearchCheckpointer.saved_config(directory)
  if saved is not None:
    check_config(saved, config_dict, directory, MAY_CHANGE)
