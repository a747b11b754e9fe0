"""The ESNAC reward, optional search constraints, and the objective.

f(x) = c (2 - c) * acc_student / acc_teacher,  c = 1 - params_s / params_t
(compression.py `reward`, the N2N reward without its constraint branch).
The `target` objective scores acc_student / acc_teacher instead, among
students within a parameter and/or FLOP limit: the most accurate student
under the limit, rather than the original's fixed trade-off. The
`pareto` objectives (`pareto_flops`: against FLOPs) grow the front of
validation accuracy against size (search.pareto); each record's reward is
then the original's, a single ranking among the front's members.
"""

from __future__ import annotations

import dataclasses

from esnac_jax.arch import Arch


def reward(acc: float, teacher_acc: float, params: int,
           teacher_params: int) -> float:
  """The original's reward; 0 for the teacher itself, at most 1."""
  if not teacher_acc > 0:
    raise ValueError(f'teacher accuracy must be > 0, got {teacher_acc}')
  if teacher_params < 1:
    raise ValueError(f'teacher parameters must be >= 1, got {teacher_params}')
  c = 1.0 - params / teacher_params
  return c * (2.0 - c) * acc / teacher_acc


OBJECTIVES = ('reward', 'target', 'pareto', 'pareto_flops')


@dataclasses.dataclass(frozen=True)
class Constraints:
  """Optional limits. Parameter and FLOP limits filter candidates when they
  are proposed (no training is spent on them); a candidate below
  `min_acc` (validation accuracy, a fraction) scores reward 0, the
  teacher's own reward, so the search learns to avoid it.
  objective: 'reward' (the original's), 'target' (accuracy relative to
  the teacher's, under max_params and/or max_flops), or 'pareto' /
  'pareto_flops' (the accuracy-size front, against parameters / FLOPs)."""
  max_params: int | None = None
  max_flops: int | None = None
  min_acc: float | None = None
  objective: str = 'reward'

  def __post_init__(self):
    for name in ('max_params', 'max_flops'):
      v = getattr(self, name)
      if v is not None and v < 1:
        raise ValueError(f'constraints.{name} must be >= 1, got {v}')
    if self.min_acc is not None and not 0 <= self.min_acc <= 1:
      raise ValueError(f'constraints.min_acc is a fraction in [0, 1], got '
                       f'{self.min_acc}')
    if self.objective not in OBJECTIVES:
      raise ValueError(f'search.objective={self.objective!r} is not one of '
                       f'{", ".join(OBJECTIVES)}')
    if self.objective == 'target' and self.max_params is None and \
        self.max_flops is None:
      raise ValueError("search.objective='target' maximises accuracy under "
                       'a size limit: set constraints.max_params and/or '
                       'constraints.max_flops')

  @property
  def pareto_axis(self) -> str | None:
    """'params' or 'flops' for the pareto objectives, else None."""
    return {'pareto': 'params', 'pareto_flops': 'flops'}.get(self.objective)

  def admits(self, arch: Arch) -> bool:
    return ((self.max_params is None or arch.num_params <= self.max_params) and
            (self.max_flops is None or arch.flops <= self.max_flops))

  def reward(self, acc: float, teacher_acc: float, params: int,
             teacher_params: int) -> float:
    if self.min_acc is not None and acc < self.min_acc:
      return 0.0
    if self.objective == 'target':
      reward(acc, teacher_acc, params, teacher_params)  # checks the inputs
      return acc / teacher_acc
    return reward(acc, teacher_acc, params, teacher_params)
