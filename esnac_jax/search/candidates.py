"""A pool of candidates: Archs made one at a time (mutations) followed by
prior draws held as arrays (arch.encoding), so a pool of thousands is
drawn, filtered, deduplicated and featurised without an Arch per child."""

from __future__ import annotations

import dataclasses
from typing import Hashable

import numpy as np

from esnac_jax.arch import Arch, batch_features
from esnac_jax.arch.encoding import Encoder, Pool


@dataclasses.dataclass
class Candidates:
  """`archs` first, then the rows of `rows` (None without an encoder);
  `keys[m]` identifies candidate m (an Arch, or its encoding's bytes)."""
  archs: list[Arch]
  rows: Pool | None
  encoder: Encoder | None
  keys: list[Hashable]

  def __len__(self) -> int:
    return len(self.keys)

  def arch(self, m: int) -> Arch:
    """Candidate m as an Arch (decoded on demand for array rows)."""
    if m < len(self.archs):
      return self.archs[m]
    return self.encoder.decode(self.rows, m - len(self.archs))

  def all_archs(self) -> list[Arch]:
    return [self.arch(m) for m in range(len(self))]

  def features(self, teacher: Arch, kind: str) -> np.ndarray:
    """[len(self), layers, F], as batch_features of all_archs()."""
    parts = []
    if self.archs:
      parts.append(batch_features(self.archs, teacher, kind))
    if self.rows is not None and len(self.rows):
      parts.append(self.encoder.features(self.rows, kind))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]

  def sizes(self, axis: str) -> np.ndarray:
    """[len(self)] parameters ('params') or FLOPs ('flops') of each
    candidate, without decoding array rows."""
    if axis not in ('params', 'flops'):
      raise ValueError(f"size axis is 'params' or 'flops', got {axis!r}")
    own = [a.num_params if axis == 'params' else a.flops for a in self.archs]
    rows = [] if self.rows is None or not len(self.rows) else getattr(
        self.encoder, 'num_params' if axis == 'params' else 'flops')(self.rows)
    return np.concatenate(
        [np.asarray(own, np.float64),
         np.asarray(rows, np.float64)])
