"""Surrogate programs compiled before they are needed.

A growing history is padded to buckets (history.bucket_size), so each time it
crosses a bucket the fit and scoring programs compile again, on the critical
path of the proposal. `Ahead` compiles the next bucket's programs in a
background thread (while the step's candidates train) and runs those
executables when the search reaches that shape; anything it has not compiled
goes through the ordinary jitted function.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable

import jax
import numpy as np


def _spec(x: Any) -> Any:
  if isinstance(x, (bool, int, float)) or x is None:
    return x
  return jax.ShapeDtypeStruct(np.shape(x), x.dtype)


def _signature(x: Any) -> Any:
  if isinstance(x, (bool, int, float)) or x is None:
    return (type(x), x)
  return (tuple(np.shape(x)), str(x.dtype))


def _split(fn: Callable, static: tuple[str, ...], args: tuple,
           kwargs: dict) -> tuple[tuple, dict, tuple]:
  """(dynamic positional args, dynamic kwargs, static values) of a call."""
  names = list(inspect.signature(fn).parameters)
  dyn_args = tuple(a for n, a in zip(names, args) if n not in static)
  stat = tuple((n, a) for n, a in zip(names, args) if n in static)
  dyn_kw = {k: v for k, v in kwargs.items() if k not in static}
  stat += tuple(sorted((k, v) for k, v in kwargs.items() if k in static))
  return dyn_args, dyn_kw, stat


class Ahead:
  """Executables of jitted functions for argument shapes to come.

  `static` names the function's static arguments (its static_argnames);
  they select the program, the other arguments' shapes and dtypes select
  the executable.
  """

  def __init__(self):
    self._exe: dict[Any, Any] = {}
    self._threads: dict[Any, threading.Thread] = {}
    self._lock = threading.Lock()
    self.compiled = 0  # programs compiled ahead
    self.hits = 0  # calls that ran one of them

  @staticmethod
  def _key(fn: Callable, dyn: tuple, stat: tuple) -> Any:
    leaves, tree = jax.tree_util.tree_flatten(dyn, is_leaf=lambda x: x is None)
    return (fn, tree, tuple(_signature(x) for x in leaves), stat)

  def warm(self, fn: Callable, static: tuple[str, ...], *args,
           **kwargs) -> None:
    """Starts compiling `fn(*args, **kwargs)` for the shapes of its
    arguments (arrays or ShapeDtypeStructs) unless that is compiled or
    compiling."""
    dyn_args, dyn_kw, stat = _split(fn, static, args, kwargs)
    key = self._key(fn, (dyn_args, dyn_kw), stat)
    with self._lock:
      if key in self._exe or key in self._threads:
        return
      spec = lambda t: jax.tree_util.tree_map(  # noqa: E731
          _spec, t, is_leaf=lambda x: x is None)
      s_args = tuple(a if n in static else spec(a)
                     for n, a in zip(inspect.signature(fn).parameters, args))
      s_kw = {k: v if k in static else spec(v) for k, v in kwargs.items()}

      def compile_it():
        try:
          exe = fn.lower(*s_args, **s_kw).compile()
        except Exception:  # the call itself will compile (and report) it
          return
        with self._lock:
          self._exe[key] = exe
          self.compiled += 1

      thread = threading.Thread(target=compile_it,
                                daemon=True,
                                name='esnac-compile-ahead')
      self._threads[key] = thread
    thread.start()

  def call(self, fn: Callable, static: tuple[str, ...], *args, **kwargs) -> Any:
    """`fn(*args, **kwargs)`, through an executable compiled ahead when one
    exists for these shapes (waiting for it if it is still compiling)."""
    dyn_args, dyn_kw, stat = _split(fn, static, args, kwargs)
    key = self._key(fn, (dyn_args, dyn_kw), stat)
    with self._lock:
      thread = self._threads.pop(key, None)
    if thread is not None:
      thread.join()
    with self._lock:
      exe = self._exe.get(key)
    if exe is None:
      return fn(*args, **kwargs)
    self.hits += 1
    return exe(*dyn_args, **dyn_kw)

  def wait(self) -> None:
    """Waits for every compile in flight (tests, clean shutdown)."""
    with self._lock:
      threads = list(self._threads.values())
    for t in threads:
      t.join()
