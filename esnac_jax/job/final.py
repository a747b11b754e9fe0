"""Final stage: fully train the top candidates, select on validation, test
the chosen one once. Each finished candidate is checkpointed, so a killed
final stage resumes with the next one."""

from __future__ import annotations

from typing import Any, Callable

from esnac_jax import checkpoints, paths
from esnac_jax.arch import Arch
from esnac_jax.data import Dataset
from esnac_jax.search.record import Record
from esnac_jax.search.reward import reward
from esnac_jax.train.progress import EpochProgress
from esnac_jax.train import (CheckpointError, TrainConfig, accuracy_on_test,
                             final_train)


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
                log: Callable[[str], None] = print) -> dict:
  """Trains records[kept[i]] from their search weights; returns the
  'final' section of results.json."""
  mngr = checkpoints.manager(directory)
  done = set(mngr.all_steps())
  entries = []
  kd = cfg.loss.kind != 'ce'
  for rank, idx in enumerate(kept):
    rec = records[idx]
    meta = None
    if rank in done:
      meta = _read(directory, rank,
                   lambda: checkpoints.restore_meta(mngr, rank))
      if not isinstance(meta, dict) or meta.get('index') != idx:
        raise CheckpointError(
            f'{directory}/{rank} holds final training of candidate '
            f"{meta.get('index') if isinstance(meta, dict) else meta!r} at "
            f'rank {rank}, expected {idx}; delete {directory} to redo the '
            'final stage')
      log(f'final {rank + 1}/{len(kept)}: candidate {idx} already trained '
          f"(val acc {meta['val_acc']:.4f})")
    else:
      log(f'final {rank + 1}/{len(kept)}: training candidate {idx} '
          f'({rec.params:,} params, search val acc {rec.val_acc:.4f}) for '
          f'{cfg.epochs} epochs')
      progress = EpochProgress(f'{directory}-progress{rank}',
                               cfg.checkpoint_every_s)
      trained = final_train(rec.arch,
                            weights[idx],
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
          'seconds': trained.seconds
      }
      checkpoints.save(mngr, rank, meta, variables=trained.variables)
      progress.discard()
    meta['val_reward'] = reward(meta['val_acc'], teacher_metrics['val_acc'],
                                rec.params, teacher.num_params)
    entries.append(meta)
  if not entries:
    mngr.close()
    return {'candidates': [], 'chosen': None}
  chosen = max(entries, key=lambda m: (m['val_reward'], -m['rank']))
  variables = _read(
      directory, chosen['rank'],
      lambda: checkpoints.restore_tree(mngr, chosen['rank'], 'variables'))
  mngr.close()
  arch = records[chosen['index']].arch
  test_acc = accuracy_on_test(arch, variables, ds, cfg)
  chosen = dict(chosen,
                test_acc=test_acc,
                test_reward=reward(test_acc, teacher_metrics['test_acc'],
                                   arch.num_params, teacher.num_params),
                times=teacher.num_params / arch.num_params,
                arch=arch.to_dict())
  log(f'final: chose candidate {chosen["index"]} on validation (val acc '
      f'{chosen["val_acc"]:.4f}, reward {chosen["val_reward"]:.4f}); test '
      f'acc {test_acc:.4f} vs teacher {teacher_metrics["test_acc"]:.4f}, '
      f'{chosen["times"]:.1f}x smaller, test reward '
      f'{chosen["test_reward"]:.4f}')
  return {'candidates': entries, 'chosen': chosen}


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
