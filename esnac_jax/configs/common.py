"""Settings every config shares; each teacher config overrides a few.

Two presets, chosen with the config argument (`configs/resnet18.py:faithful`):
  default   our improved search (see the README's list of differences);
  faithful  the original ESNAC's choices (options.py, seed 127).
"""

import dataclasses

import ml_collections

from esnac_jax.arch import SamplerConfig
from esnac_jax.search import ESNACConfig, N2NConfig

PRESETS = ('default', 'faithful')


def get_base_config(preset: str = 'default') -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; use one of {PRESETS}')
  faithful = preset == 'faithful'
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 127
  # cifar10 | cifar100 | digits | npz:PATH (your arrays) | tfds:NAME (any
  # prepared TFDS image-classification dataset)
  c.dataset = 'cifar100'
  c.data_dir = ''  # TFDS data dir; '' = TFDS's default
  c.image_size = 0  # resize images to NxN; 0 = as the dataset stores them
  # Where training batches are gathered, cropped, flipped and normalised:
  # auto (on the accelerator where there is one), host (NumPy) or device.
  c.data_feed = 'auto'
  # Several processes (TPU pods, multi-GPU hosts): jax.distributed. With
  # initialize and no address, JAX finds the coordinator (TPU pods, SLURM).
  c.distributed = ml_collections.ConfigDict(
      dict(initialize=False,
           coordinator_address='',
           num_processes=0,
           process_id=-1))
  # JAX's persistent compilation cache: auto (~/.cache/esnac_jax/xla), off,
  # or a local folder; a resumed or repeated run skips compiles done before.
  c.compile_cache = 'auto'
  # XLA:CPU options that compile small students faster: auto | on | off
  # (esnac_jax/job/xla_flags.py).
  c.xla_cpu_fast_compile = 'auto'

  c.teacher = ml_collections.ConfigDict()
  # vgg19 | resnet18 | resnet34 | shufflenet | mobilenetv2
  c.teacher.name = 'resnet18'
  c.teacher.width = 1.0  # channel multiplier
  # Your own teacher: an Arch JSON document (Arch.to_json) or an ONNX file
  # (weights included), used instead of teacher.name; and trained weights
  # (a Flax msgpack file, an orbax checkpoint of make_model(arch)'s
  # variables, or an ONNX file), so the teacher is measured, not trained.
  c.teacher.arch = ''
  c.teacher.onnx = ''  # an ONNX file: the same as teacher.arch=FILE.onnx
  c.teacher.weights = ''
  # Trained only when workdir/teacher holds no checkpoint.
  c.teacher.train = _train(epochs=200,
                           batch_size=128,
                           optimizer='sgd',
                           lr=0.1,
                           schedule='cosine',
                           loss='ce')
  # A killed teacher training resumes from its last save (every this many
  # seconds; 0 = every epoch) instead of epoch 1. The same for final.
  c.teacher.train.checkpoint_every_s = 60.0

  # The compression operators' sampling distributions (ar_p1/ar_p2/ar_p3),
  # the searchers' settings: each section holds every field of the library
  # object it becomes (SamplerConfig, ESNACConfig and its SurrogateConfig,
  # N2NConfig), with that object's defaults, so the presets are defined
  # once, in the library: ESNACConfig() and ESNACConfig.faithful().
  c.search_space = _fields(SamplerConfig())

  c.search = ml_collections.ConfigDict()
  c.search.searcher = 'esnac'  # esnac | random | evolution | n2n
  # reward: the original's c(2-c)*acc/acc_teacher; target: acc/acc_teacher
  # under constraints.max_params and/or max_flops (the most accurate student
  # within a size budget); pareto / pareto_flops: grow the front of
  # validation accuracy against parameters / FLOPs (expected hypervolume
  # improvement); the final stage trains members spread along it.
  c.search.objective = 'reward'
  c.search.steps = 20  # co_step_n
  c.search.candidates_per_step = 8  # co_kernel_n: one per kernel
  esnac = ESNACConfig.faithful() if faithful else ESNACConfig()
  c.search.esnac = _fields(esnac, skip=('surrogate',))
  c.search.surrogate = _fields(esnac.surrogate)
  # Transfer: start every fit from the embedding a finished search saved
  # (WORKDIR/embedding) instead of a fresh LSTM; with train_embedding=False
  # the LSTM stays as saved and only the GP hyperparameters are fitted.
  c.search.surrogate.init_from = ''
  c.search.evolution = ml_collections.ConfigDict()
  c.search.evolution.population = 24
  c.search.evolution.tournament = 6
  c.search.n2n = _fields(N2NConfig())
  c.search.n2n.stage1_asks = 0  # removal-stage steps; 0 = half the steps

  # Optional limits (0 = none): parameters and FLOPs filter proposals;
  # a candidate below min_acc (validation, fraction) scores reward 0.
  c.constraints = ml_collections.ConfigDict()
  c.constraints.max_params = 0
  c.constraints.max_flops = 0
  c.constraints.min_acc = 0.0

  # Scoring a candidate: the original's tr_se_* (KD as MSE on logits).
  c.distill = _train(epochs=10,
                     batch_size=128,
                     optimizer='adam',
                     lr=1e-3,
                     schedule='constant',
                     loss='mse')
  c.distill.select = 'first'  # kept teacher channels: first | l1
  c.distill.bn_stats = 'reset'  # reset | inherit
  # auto (CPU: materialised; accelerators: masked_vmap where it applies) |
  # materialised (one program per candidate) | masked (teacher network
  # under masks, one program) | masked_vmap (K candidates vmapped)
  c.distill.path = 'auto'
  # Successive halving of each step's candidates: after each of these
  # epochs only the better half (by validation accuracy so far) trains on,
  # e.g. (1, 2) with 4 epochs trains for half the candidate-epochs; the
  # others are scored by what they reached. () trains all (the original).
  c.distill.halving = ()
  # Stop a candidate after an epoch once it cannot beat the best score so
  # far even if it then gained as much as any full-budget candidate did
  # from that epoch on (objectives reward and target).
  c.distill.stop_hopeless = False

  # Final training of the top candidates, from their search weights
  # (tr_fu_*): SGD 0.01, x0.1 at epochs 100 and 200, cross-entropy.
  c.final = _train(epochs=300,
                   batch_size=128,
                   optimizer='sgd',
                   lr=0.01,
                   schedule='step',
                   loss='ce',
                   boundaries=(100, 200))
  c.final.top_n = 4  # co_best_n
  # Also train these candidates fully (results.json indices, e.g. '12,40'),
  # e.g. another point of the Pareto front; a finished workdir resumes.
  c.final.indices = ''
  c.final.checkpoint_every_s = 60.0

  # bench.compare (searchers side by side, several seeds): the config runs
  # with `override` merged in (same layout as the config, e.g.
  # {'distill': {'epochs': 1}}), so a comparison of thousands of candidates
  # fits its budget; `faithful` sizes the original's surrogate (64x4 LSTMs,
  # 1000 prior samples per kernel at full size).
  c.compare = ml_collections.ConfigDict()
  c.compare.override = ml_collections.ConfigDict()
  # Score each step's candidates together, as the job does (always so with
  # distill.halving), rather than each alone with its own seed.
  c.compare.batch_scoring = False
  c.compare.faithful = ml_collections.ConfigDict(
      dict(hidden=64, num_layers=4, pool_size=1000, max_steps=100))
  return c


def _fields(obj, skip: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  """A config section holding every field of a library dataclass."""
  return ml_collections.ConfigDict({
      f.name: getattr(obj, f.name)
      for f in dataclasses.fields(obj)
      if f.name not in skip
  })


def _train(epochs, batch_size, optimizer, lr, schedule, loss,
           boundaries=()) -> ml_collections.ConfigDict:
  t = ml_collections.ConfigDict()
  t.epochs = epochs
  t.batch_size = batch_size
  t.optimizer = optimizer  # adam | sgd
  t.lr = lr
  t.momentum = 0.9
  t.weight_decay = 5e-4
  t.schedule = schedule  # constant | step | cosine
  t.boundaries = tuple(boundaries)  # epochs where a step schedule decays
  t.gamma = 0.1
  t.loss = loss  # ce | mse | kl
  t.temperature = 4.0
  t.label_weight = 0.0
  t.dtype = 'float32'  # activations: float32 | bfloat16
  return t


def parse_arg(arg, **defaults) -> ml_collections.ConfigDict:
  """'key=value,flag' config arguments, big_vision style: file.py:runlocal.

  A bare word that is a preset name selects that preset.
  """
  out = ml_collections.ConfigDict(defaults)
  for part in (arg or '').split(','):
    if not part:
      continue
    key, _, value = part.partition('=')
    if key in PRESETS and not value and 'preset' in out:
      out.preset = key
      continue
    if key not in out:
      raise ValueError(f'unknown config argument {key!r}; known: '
                       f'{", ".join(sorted(out))} or a preset '
                       f'({", ".join(PRESETS)})')
    out[key] = type(defaults[key])(value) if value else True
  return out
