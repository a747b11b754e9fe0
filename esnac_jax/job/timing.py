"""Where a job's seconds go: a running total of JAX's compile time, read at
the job's phase boundaries (teacher, propose, train, final)."""

from __future__ import annotations

import threading

import jax

COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration',
                  '/jax/core/compile/jaxpr_to_mlir_module_duration',
                  '/jax/core/compile/backend_compile_duration')


class CompileClock:
  """Seconds JAX spent tracing, lowering and compiling (any thread) while
  the clock is open. Use as a context manager."""

  def __init__(self):
    self._total = 0.0
    self._lock = threading.Lock()

  def _on_event(self, event: str, duration: float, **kwargs) -> None:
    del kwargs
    if event in COMPILE_EVENTS:
      with self._lock:
        self._total += duration

  def seconds(self) -> float:
    with self._lock:
      return self._total

  def __enter__(self) -> CompileClock:
    jax.monitoring.register_event_duration_secs_listener(self._on_event)
    return self

  def __exit__(self, *exc) -> None:
    jax.monitoring.unregister_event_duration_listener(self._on_event)


def breakdown(timing: dict[str, float]) -> str:
  """One line: where the job's seconds went."""
  t = lambda k: timing.get(k, 0.0)  # noqa: E731
  parts = [
      f'teacher {t("teacher_s"):.0f}s',
      f'propose {t("propose_s"):.0f}s (compiling '
      f'{t("compile_propose_s"):.0f}s)',
      f'train {t("train_s"):.0f}s (compiling {t("compile_train_s"):.0f}s)',
      f'final {t("final_s"):.0f}s'
  ]
  return 'time: ' + ', '.join(parts)
