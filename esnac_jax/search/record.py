"""One evaluated candidate, as stored in the search state and results.json."""

from __future__ import annotations

import dataclasses
from typing import Any

from esnac_jax.arch import Arch


@dataclasses.dataclass(frozen=True)
class Record:
  arch: Arch
  params: int
  flops: int
  val_acc: float  # best distillation epoch's validation accuracy
  reward: float
  step: int  # search step that proposed and evaluated it
  best_epoch: int = 0
  seconds: float = 0.0  # training time of its batch (shared by the batch)
  # distillation epochs it trained (fewer when successive halving stopped
  # it; 0 where unknown, e.g. results of older versions)
  epochs: int = 0
  # validation accuracy after each distillation epoch (empty where unknown)
  curve: tuple[float, ...] = ()

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d['arch'] = self.arch.to_dict()
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> Record:
    d = dict(d)
    d['arch'] = Arch.from_dict(d['arch'])
    d['curve'] = tuple(d.get('curve', ()))
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class Result:
  """What evaluating one candidate returns to a searcher's `tell`."""
  val_acc: float
  reward: float
  best_epoch: int = 0
  seconds: float = 0.0
  epochs: int = 0  # distillation epochs trained
  curve: tuple[float, ...] = ()  # validation accuracy after each epoch


def ranked(records: list[Record], k: int) -> list[int]:
  """Indices of the k best records by reward, earliest first among ties."""
  order = sorted(range(len(records)), key=lambda i: (-records[i].reward, i))
  return order[:k]
