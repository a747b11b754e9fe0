"""The search loop: ask, evaluate, tell, checkpoint; resumable at any step."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from esnac_jax.search import pareto
from esnac_jax.search.base import Searcher
from esnac_jax.job.checkpoint import SearchCheckpointer
from esnac_jax.search.record import Record, Result, ranked

Evaluate = Callable[..., tuple[list[Result], list[dict]]]


class ConfigMismatchError(ValueError):
  """The workdir holds a search made with another config."""


# Config keys a resumed search may change: more steps, the final stage,
# bench settings, how processes are joined, where compiles are cached and
# batches built (the same batches to float32 rounding).
MAY_CHANGE = ('search.steps', 'final', 'compare', 'distributed',
              'compile_cache', 'xla_cpu_fast_compile', 'data_feed')

# Config keys added since searches were first saved, with the values that
# do what those searches did: a saved config without the key matches a
# config that holds one of them. (Without halving every fidelity mode fits
# the same data, and without early stopping every candidate trains the
# full budget.)
ADDED_KEYS: dict[str, tuple[Any, ...]] = {
    'search.surrogate.lstm_impl': ('custom',),
    'teacher.onnx': ('',),
    'image_size': (0,),
    'search.objective': ('reward',),
    'distill.halving': ([],),
    'compare.batch_scoring': (False,),
    'search.esnac.fidelity': ('extrapolate', 'raw', 'full_only'),
    'distill.stop_hopeless': (False,),
    'search.esnac.skip_hopeless': (False,),
}


@dataclasses.dataclass
class SearchOutcome:
  searcher: Searcher
  weights: dict[int, dict]  # record index -> best-epoch weights (kept ones)
  timing: dict[str, float]
  resumed_from: int  # steps already done when this process started


def step_seed(seed: int, step: int) -> int:
  """The evaluation seed of a step (data order, augmentation)."""
  return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def kept_indices(records: list[Record],
                 keep: int,
                 axis: str | None = None) -> list[int]:
  """Indices of the `keep` best records by reward, or with a pareto
  objective's size `axis` up to `keep` members spread along the accuracy-
  size front: their weights are kept for the final stage."""
  if axis is None or keep < 1:
    return ranked(records, keep)
  return pareto.spread([getattr(r, axis) for r in records],
                       [r.val_acc for r in records], keep)


def config_diff(saved: dict, current: dict,
                may_change: tuple[str, ...]) -> list[str]:
  """'key: saved -> current' for every key that differs, except keys under
  `may_change` and keys added since `saved` holding a value that does
  what it did (ADDED_KEYS)."""
  a, b = _flatten(saved), _flatten(current)
  a.update({
      k: b[k] if b[k] in v else v[0]
      for k, v in ADDED_KEYS.items()
      if k not in a and k in b
  })
  return [
      f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in sorted(set(a) | set(b))
      if a.get(k) != b.get(k) and not any(k == p or k.startswith(p + '.')
                                          for p in may_change)
  ]


def check_config(saved: dict, current: dict, directory: str,
                 may_change: tuple[str, ...]) -> None:
  """Raises ConfigMismatchError naming the keys that differ."""
  diff = config_diff(saved, current, may_change)
  if diff:
    shown = '; '.join(diff[:6])
    raise ConfigMismatchError(
        f'{directory} holds a search made with a different config ({shown}'
        f'{" ..." if len(diff) > 6 else ""}). Rerun with the same config '
        f'(only {", ".join(may_change)} may change), use another --workdir, '
        f'or delete {directory} to start the search afresh (the trained '
        'teacher is kept).')


def _flatten(d: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(d, dict):
    out = {}
    for k, v in d.items():
      out.update(_flatten(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: list(d) if isinstance(d, tuple) else d}


def run_search(
    searcher: Searcher,
    evaluate: Evaluate,
    ckpt: SearchCheckpointer,
    *,
    steps: int,
    per_step: int,
    seed: int,
    keep: int,
    config: dict,
    may_change: tuple[str, ...] = MAY_CHANGE,
    on_step: Callable[[SearchOutcome, int], None] | None = None,
    log: Callable[[str], None] = print,
    agree: Callable[[list], list] | None = None,
    compile_seconds: Callable[[], float] = lambda: 0.0) -> SearchOutcome:
  """Runs (or resumes) `steps` steps of `per_step` candidates each.

  After every step the whole state — searcher history, RNG counter and
  arrays, the `keep` best candidates' weights, timing — is checkpointed.
  `agree` (several processes: distributed.agree) makes every process
  evaluate and record the same proposals. `compile_seconds` (a running
  total, job.timing.CompileClock) splits out the compile time of each phase.
  """
  out = SearchOutcome(searcher, {}, {
      'propose_s': 0.0,
      'train_s': 0.0,
      'compile_propose_s': 0.0,
      'compile_train_s': 0.0
  }, 0)
  restored = ckpt.restore(log)
  if restored is not None:
    meta, arrays = restored
    check_config(meta['config'], config, ckpt.directory, may_change)
    arrays = arrays or {}
    searcher.load_state(dict(meta['searcher'], arrays=arrays.get('searcher')))
    out.weights = {int(k): v for k, v in arrays.get('weights', {}).items()}
    out.timing.update(meta['timing'])
    out.resumed_from = meta['step']
    log(f'resumed the search from {ckpt.directory}: step {meta["step"]}/'
        f'{steps} done, {len(searcher.records)} candidates evaluated')
  t_start = time.perf_counter()
  for step in range(out.resumed_from + 1, steps + 1):
    t0, c0 = time.perf_counter(), compile_seconds()
    archs = searcher.ask(per_step)
    if agree is not None:
      archs = agree(archs)
    t1, c1 = time.perf_counter(), compile_seconds()
    log(f'step {step}/{steps}: proposed {len(archs)} candidates in '
        f'{t1 - t0:.1f}s; training them')
    results, weights = evaluate(archs, step_seed(seed, step), log)
    t2, c2 = time.perf_counter(), compile_seconds()
    n0 = len(searcher.records)
    searcher.tell(archs, results, step)
    out.weights.update({n0 + i: w for i, w in enumerate(weights)})
    kept = kept_indices(searcher.records, keep,
                        searcher.constraints.pareto_axis)
    out.weights = {i: out.weights[i] for i in kept if i in out.weights}
    out.timing['propose_s'] += t1 - t0
    out.timing['train_s'] += t2 - t1
    out.timing['compile_propose_s'] += c1 - c0
    out.timing['compile_train_s'] += c2 - c1
    _save(ckpt, step, searcher, out, config)
    if on_step:
      on_step(out, step)
    log(_progress(searcher, step, steps, out.resumed_from, t_start, t0, t1, t2))
  return out


def _save(ckpt: SearchCheckpointer, step: int, searcher: Searcher,
          out: SearchOutcome, config: dict) -> None:
  state = searcher.state()
  arrays = {}
  searcher_arrays = state.pop('arrays')
  if searcher_arrays is not None:
    arrays['searcher'] = searcher_arrays
  if out.weights:
    arrays['weights'] = {str(i): w for i, w in out.weights.items()}
  ckpt.save(step, {
      'config': config,
      'searcher': state,
      'timing': out.timing
  }, arrays or None)


def _progress(searcher: Searcher, step: int, steps: int, first: int,
              t_start: float, t0: float, t1: float, t2: float) -> str:
  best = searcher.best(1)[0]
  now = time.perf_counter()
  done = step - first
  eta = (now - t_start) / done * (steps - step)
  teacher_params = searcher.teacher.num_params
  new = [r.reward for r in searcher.records if r.step == step]
  return (f'step {step}/{steps} done: step best reward {max(new):.4f}; best '
          f'so far {best.reward:.4f} (acc {best.val_acc:.4f}, '
          f'{teacher_params / best.params:.1f}x smaller, step {best.step}); '
          f'{len(searcher.records)} evaluated; propose {t1 - t0:.1f}s, train '
          f'{t2 - t1:.1f}s; elapsed {_hms(now - t_start)}, ETA {_hms(eta)}')


def _hms(seconds: float) -> str:
  s = int(round(seconds))
  return f'{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s' if s >= 3600 \
      else f'{s // 60}m{s % 60:02d}s'
