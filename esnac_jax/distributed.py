"""Several processes, one search: jax.distributed set-up and agreement.

Every process runs the same program: it trains (or restores) the same
teacher, runs the surrogate on the same history (replicated), scores each
step's candidates together over a global device mesh (the candidate axis
over each host's devices, the data axis over the hosts; see
train.masked.candidate_mesh) and so sees the same accuracies. Floating
point can still differ between hosts, so process 0's proposals and teacher
weights are broadcast to all: every process tells its searcher the same
candidates. Only process 0 writes reports; orbax checkpoints are written
collectively, so the workdir must be one that every host sees (a GCS
bucket or a shared file system).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from esnac_jax.arch import Arch


def initialize(coordinator_address: str = '',
               num_processes: int = 0,
               process_id: int = -1) -> None:
  """Joins this process to a multi-process run (jax.distributed). With no
  arguments JAX finds the coordinator itself (Cloud TPU pods, SLURM, Open
  MPI); elsewhere give all three. On CPUs the cross-process collectives
  use gloo."""
  given = [bool(coordinator_address), num_processes > 0, process_id >= 0]
  if any(given) and not all(given):
    raise ValueError('distributed: give coordinator_address, num_processes '
                     'and process_id together, or none of them (for JAX to '
                     'find the coordinator on TPU pods and SLURM)')
  if num_processes and not 0 <= process_id < num_processes:
    raise ValueError(f'distributed.process_id={process_id} outside 0..'
                     f'{num_processes - 1}')
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  kwargs = (dict(coordinator_address=coordinator_address,
                 num_processes=num_processes,
                 process_id=process_id) if all(given) else {})
  jax.distributed.initialize(**kwargs)


def is_primary() -> bool:
  """Whether this process writes the reports (process 0)."""
  return jax.process_index() == 0


def broadcast_text(text: str) -> str:
  """Process 0's `text` on every process."""
  if jax.process_count() == 1:
    return text
  from jax.experimental import multihost_utils as mh
  data = np.frombuffer(text.encode(), np.uint8)
  n = int(mh.broadcast_one_to_all(np.array(len(data), np.int64)))
  buf = np.zeros(n, np.uint8)
  if is_primary():
    buf[:] = data
  return bytes(np.asarray(mh.broadcast_one_to_all(buf))).decode()


def agree(archs: list[Arch],
          log: Callable[[str], None] | None = None) -> list[Arch]:
  """Process 0's proposals on every process; a process whose own differ
  says so and takes process 0's."""
  if jax.process_count() == 1:
    return archs
  import json
  mine = json.dumps([a.to_dict() for a in archs], sort_keys=True)
  theirs = broadcast_text(mine)
  if theirs == mine:
    return archs
  if log:
    log(f'process {jax.process_index()}: proposals differ from process '
        "0's (floating point); using process 0's")
  return [Arch.from_dict(d) for d in json.loads(theirs)]


def broadcast_tree(tree: Any) -> Any:
  """Process 0's pytree of arrays (e.g. teacher weights) on every process."""
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils as mh
  return jax.tree_util.tree_map(np.asarray, mh.broadcast_one_to_all(tree))
