"""Final stage: fully train the top candidates, select on validation, test
the chosen one once. Candidates the user asks for (final.indices) are
trained too, and tested, but not chosen among. Each finished candidate is
checkpointed, so a killed final stage resumes with the next one. A search
extended with more steps keeps the finalists of its earlier final stages
(trained with the same settings) among those it chooses from, copied
rather than trained again."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Sequence

from esnac_jax import checkpoints, paths
from esnac_jax.arch import Arch
from esnac_jax.data import Dataset
from esnac_jax.search.record import Record
from esnac_jax.search.reward import reward
from esnac_jax.train.progress import EpochProgress
from esnac_jax.train import (CheckpointError, TrainConfig, accuracy_on_test,
                             final_train)


def settings(cfg: TrainConfig) -> str:
  """What makes two final trainings of one candidate the same: everything
  in `cfg` but how often progress is saved and where batches are built."""
  d = dataclasses.asdict(cfg)
  d.pop('checkpoint_every_s')
  d.pop('feed')
  return json.dumps(d, sort_keys=True, default=str)


def earlier_finalists(
    workdir: str,
    steps: int,
    cfg: TrainConfig,
    log: Callable[[str], None] = print) -> dict[int, tuple[str, int]]:
  """{candidate index: (the final-stepK directory (K < steps) that trained
  it with the settings of `cfg`, its rank there)} for the finalists, not
  requested ones, of earlier final stages of this workdir; the latest K
  wins."""
  root = paths.path(workdir)
  if not root.exists():
    return {}
  found = sorted((int(m.group(1)), p.name)
                 for p in root.iterdir()
                 if (m := re.fullmatch(r'final-step(\d+)', p.name)) and
                 int(m.group(1)) < steps)
  out, other = {}, []
  want = settings(cfg)
  for _, name in found:
    directory = paths.join(workdir, name)
    with checkpoints.manager(directory, create=False) as mngr:
      for rank in mngr.all_steps():
        meta = _read(directory, rank,
                     lambda: checkpoints.restore_meta(mngr, rank))
        if not isinstance(meta, dict) or meta.get('requested') or \
            meta.get('index') is None:
          continue
        if meta.get('settings') != want:
          other.append(name)
          continue
        out[meta['index']] = (directory, rank)
  if other:
    log(f'final: the finalists of {", ".join(sorted(set(other)))} were '
        'trained with other (or unrecorded) final settings, so they are not '
        'chosen among')
  return out


def final_stage(records: list[Record],
                kept: list[int],
                weights: dict[int, dict],
                teacher: Arch,
                teacher_vars: dict,
                teacher_metrics: dict,
                ds: Dataset,
                cfg: TrainConfig,
                seed: int,
                directory: str,
                log: Callable[[str], None] = print,
                requested: Sequence[int] = (),
                initial: Callable[[int], dict] | None = None,
                score: Callable[[float, float, int, int], float] = reward,
                earlier: dict[int, tuple[str, int]] | None = None) -> dict:
  """Trains records[kept[i]] at rank i from their search weights, then
  each `requested` candidate not among them (from its search weights if
  kept, else from `initial(index)`) at a rank of its own; returns the
  'final' section of results.json. `score(acc, teacher_acc, params,
  teacher_params)` is the search's objective (the reward by default).
  `earlier` (earlier_finalists): candidates already trained in another
  directory, copied from there; those not in `kept` join it."""
  earlier = earlier or {}
  kept = list(kept) + [i for i in sorted(earlier) if i not in kept]
  mngr = checkpoints.manager(directory)
  done = set(mngr.all_steps())
  extra = [i for i in dict.fromkeys(requested) if i not in kept]
  plan = list(enumerate(kept)) + _requested_ranks(mngr, directory, done,
                                                  len(kept), extra)
  entries = []
  kd = cfg.loss.kind != 'ce'
  for rank, idx in plan:
    rec = records[idx]
    meta = None
    label = (f'final {rank + 1}/{len(kept)}' if rank < len(kept) else
             f'final (requested {extra.index(idx) + 1}/{len(extra)})')
    if rank in done:
      meta = _read(directory, rank,
                   lambda: checkpoints.restore_meta(mngr, rank))
      if not isinstance(meta, dict) or meta.get('index') != idx:
        raise CheckpointError(
            f'{directory}/{rank} holds final training of candidate '
            f"{meta.get('index') if isinstance(meta, dict) else meta!r} at "
            f'rank {rank}, expected {idx}; delete {directory} to redo the '
            'final stage')
      log(f'{label}: candidate {idx} already trained '
          f"(val acc {meta['val_acc']:.4f})")
    elif idx in earlier and rank < len(kept):
      meta = _copy(*earlier[idx], mngr, rank)
      log(f'{label}: candidate {idx} already trained in {earlier[idx][0]} '
          f"(val acc {meta['val_acc']:.4f})")
    else:
      start = weights.get(idx)
      if start is None:
        if initial is None:
          raise ValueError(f'no weights to start candidate {idx} from')
        start = initial(idx)
      origin = '' if idx in weights else ", from the teacher's weights"
      log(f'{label}: training candidate {idx} '
          f'({rec.params:,} params, search val acc {rec.val_acc:.4f}) for '
          f'{cfg.epochs} epochs{origin}')
      progress = EpochProgress(f'{directory}-progress{rank}',
                               cfg.checkpoint_every_s)
      trained = final_train(rec.arch,
                            start,
                            ds,
                            cfg,
                            seed,
                            teacher=(teacher, teacher_vars) if kd else None,
                            log=log,
                            progress=progress)
      meta = {
          'index': idx,
          'rank': rank,
          'params': rec.params,
          'search_val_acc': rec.val_acc,
          'val_acc': trained.val_acc,
          'best_epoch': trained.best_epoch,
          'epochs': cfg.epochs,
          'val_history': trained.history,
          'seconds': trained.seconds,
          'requested': rank >= len(kept),
          'settings': settings(cfg)
      }
      checkpoints.save(mngr, rank, meta, variables=trained.variables)
      progress.discard()
    meta = {k: v for k, v in meta.items() if k != 'settings'}
    meta['val_reward'] = score(meta['val_acc'], teacher_metrics['val_acc'],
                               rec.params, teacher.num_params)
    meta['requested'] = rank >= len(kept)
    entries.append(meta)
  if not entries:
    mngr.close()
    return {'candidates': [], 'chosen': None}

  def test(meta):
    variables = _read(
        directory, meta['rank'],
        lambda: checkpoints.restore_tree(mngr, meta['rank'], 'variables'))
    return accuracy_on_test(records[meta['index']].arch, variables, ds, cfg)

  for meta in entries:
    if meta['requested']:  # asked for by index: tested, never chosen among
      meta['test_acc'] = test(meta)
      log(f'final: requested candidate {meta["index"]}: val acc '
          f'{meta["val_acc"]:.4f}, test acc {meta["test_acc"]:.4f}, '
          f'{teacher.num_params / meta["params"]:.1f}x smaller (rank '
          f'{meta["rank"]})')
  ranked_entries = [m for m in entries if not m['requested']]
  if not ranked_entries:
    mngr.close()
    return {'candidates': entries, 'chosen': None}
  chosen = max(ranked_entries, key=lambda m: (m['val_reward'], -m['rank']))
  test_acc = test(chosen)
  mngr.close()
  arch = records[chosen['index']].arch
  chosen = dict(chosen,
                test_acc=test_acc,
                test_reward=score(test_acc, teacher_metrics['test_acc'],
                                  arch.num_params, teacher.num_params),
                times=teacher.num_params / arch.num_params,
                arch=arch.to_dict())
  log(f'final: chose candidate {chosen["index"]} on validation (val acc '
      f'{chosen["val_acc"]:.4f}, reward {chosen["val_reward"]:.4f}); test '
      f'acc {test_acc:.4f} vs teacher {teacher_metrics["test_acc"]:.4f}, '
      f'{chosen["times"]:.1f}x smaller, test reward '
      f'{chosen["test_reward"]:.4f}')
  return {'candidates': entries, 'chosen': chosen}


def _copy(source: str, source_rank: int, mngr, rank: int) -> dict:
  """Saves the final training at `source_rank` of directory `source` at
  `rank` of `mngr`; returns its meta."""
  with checkpoints.manager(source, create=False) as src:
    meta = _read(source, source_rank,
                 lambda: checkpoints.restore_meta(src, source_rank))
    variables = _read(
        source, source_rank,
        lambda: checkpoints.restore_tree(src, source_rank, 'variables'))
  meta = dict(meta, rank=rank, copied_from=source)
  checkpoints.save(mngr, rank, meta, variables=variables)
  return meta


def _read(directory: str, rank: int, restore: Callable[[], Any]) -> Any:
  """restore(), with a damaged save named by its path."""
  try:
    return restore()
  except Exception as e:  # orbax raises many kinds for damaged files
    path = paths.join(directory, str(rank))
    raise CheckpointError(
        f'the final-training checkpoint {path} is unreadable '
        f'({type(e).__name__}: {str(e)[:160]}); delete {path} to train '
        'that candidate again') from None


def _requested_ranks(mngr, directory: str, done: set[int], first: int,
                     extra: list[int]) -> list[tuple[int, int]]:
  """(rank, index) of each requested candidate: the rank that already
  holds its training, else a new rank after every used one."""
  held = {}
  for rank in sorted(r for r in done if r >= first):
    meta = _read(directory, rank, lambda: checkpoints.restore_meta(mngr, rank))
    if isinstance(meta, dict) and meta.get('index') is not None:
      held.setdefault(meta['index'], rank)
  free = max(done | {first - 1}) + 1
  plan = []
  for idx in extra:
    if idx not in held:
      held[idx], free = free, free + 1
    plan.append((held[idx], idx))
  return plan
