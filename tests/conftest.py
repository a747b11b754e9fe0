"""Shared fixtures: small teachers that keep CPU tests fast."""

import atexit
import os
import shutil
import tempfile

import jax
import pytest

# Tests run tiny programs once each: compile fast rather than run fast.
jax.config.update('jax_disable_most_optimizations', True)

from esnac_jax.arch import get_teacher  # noqa: E402  (after the flag)

TEACHER_NAMES = ('vgg19', 'resnet18', 'resnet34', 'shufflenet', 'mobilenetv2')


def tiny_teacher(name: str, num_classes: int = 10):
  """A narrow teacher at the smallest input its downsampling allows."""
  size = 32 if name == 'vgg19' else 8
  return get_teacher(name,
                     num_classes=num_classes,
                     width=0.125,
                     input_size=size)


# The teachers whose tests take longest run in the slow tier only; the fast
# tier keeps the others (and ShuffleNet's own ops have tests of their own).
HEAVY = ('shufflenet', 'mobilenetv2')


def with_heavy_slow(names):
  """pytest params of `names`, the HEAVY ones marked slow."""
  return [
      pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
      for n in names
  ]


@pytest.fixture(params=with_heavy_slow(TEACHER_NAMES))
def teacher_name(request):
  return request.param


_XLA_CACHE: list[str] = []


def job_env(**extra: str) -> dict[str, str]:
  """The environment of a job run in a subprocess: CPU, quick compiles,
  and this test worker's persistent compilation cache, which the many runs
  of the same tiny job share (a kill chain reruns one job ~15 times).
  A worker runs one job process at a time, so no two write it at once.
  ESNAC_TESTS_XLA_CACHE=off runs without it (to rule it out, or time it)."""
  if os.environ.get('ESNAC_TESTS_XLA_CACHE') == 'off':
    return dict(os.environ,
                JAX_DISABLE_MOST_OPTIMIZATIONS='true',
                JAX_PLATFORMS='cpu',
                **extra)
  if not _XLA_CACHE:
    folder = tempfile.mkdtemp(prefix='esnac-xla-')
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _XLA_CACHE.append(folder)
  return dict(os.environ,
              JAX_DISABLE_MOST_OPTIMIZATIONS='true',
              JAX_PLATFORMS='cpu',
              JAX_COMPILATION_CACHE_DIR=_XLA_CACHE[0],
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.1',
              **extra)


def env_int(name: str, default: int) -> int:
  return int(os.environ.get(name, default))


def random_variables(arch, seed: int = 0):
  """Random-valued variables of the right shapes, without compiling init."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from esnac_jax.models import make_model
  shapes = jax.eval_shape(
      make_model(arch).init, jax.random.key(0),
      jnp.zeros((1,) + arch.input_shape))
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)


@pytest.fixture(autouse=True, scope='module')
def _release_programs_between_modules():
  """A test worker runs hundreds of programs; like a long search, it drops
  them before it nears the memory-map limit (the job does this per step)."""
  yield
  from esnac_jax.train.steps import release_programs
  release_programs(threshold=0.5)


def distillation_case(kids: int, seed: int):
  """(teacher, its variables, digits with 1/8 of the training images,
  `kids` children): a ResNet-18 with tame random weights, small enough for
  distillation tests to train in seconds."""
  import dataclasses
  import numpy as np
  from esnac_jax.arch import sample
  from esnac_jax.data import Split, load_digits
  teacher = get_teacher('resnet18', 10, 1, 0.125, 8)
  tvars = jax.tree_util.tree_map(lambda a: 0.3 * a,
                                 random_variables(teacher, seed=3))
  tvars['batch_stats'] = jax.tree_util.tree_map(lambda a: np.abs(a) + 0.5,
                                                tvars['batch_stats'])
  ds = load_digits()
  ds = dataclasses.replace(ds,
                           train=Split(ds.train.images[::8],
                                       ds.train.labels[::8]))
  rng = np.random.default_rng(seed)
  return teacher, tvars, ds, [sample(teacher, rng) for _ in range(kids)]
