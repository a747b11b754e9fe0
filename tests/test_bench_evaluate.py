"""The evaluation benchmark counts compiles and reports throughput."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esnac_jax.bench import evaluate as bench


@pytest.mark.slow
def test_digits_rows():
  counter = bench.CompileCounter()
  rows = bench.run_setup(
      'digits', [1, 2],
      steps=1,
      batch=16,
      counter=counter,
      paths=['materialised', 'materialised_ahead', 'masked', 'masked_vmap'])
  assert [(r['path'], r['k']) for r in rows] == [
      (p, k)
      for p in ('materialised', 'materialised_ahead', 'masked', 'masked_vmap')
      for k in (1, 2)
  ]
  by = {(r['path'], r['k']): r for r in rows}
  for r in rows:
    assert r['step_s'] > 0 and r['candidates_per_hour'] > 0
    assert r['candidates_per_hour_with_compile'] < r['candidates_per_hour']
    assert r['flops_per_step'] > 0
  # Materialised: a program per new child, at every search step.
  assert by['materialised', 2]['compiles'] >= 2
  assert by['materialised', 2]['compiles_next_step'] >= 2
  # Compiled ahead: the same programs, compiled before the first step.
  assert by['materialised_ahead', 2]['compiles'] >= 2
  assert by['materialised_ahead', 2]['compiles_next_step'] >= 2
  # Masked: one program for the teacher, whatever the candidates.
  assert by['masked', 1]['compiles'] >= 1
  assert by['masked', 2]['compiles'] == 0  # reused across K
  assert by['masked', 2]['compiles_next_step'] == 0
  # vmapped: one program per K, reused by the next step's new children.
  assert by['masked_vmap', 2]['compiles'] >= 1
  assert by['masked_vmap', 2]['compiles_next_step'] == 0


def test_sharing_counts_programs():
  sh = bench.sharing('digits', 30)
  assert sh['masked'] == 1
  assert sh['distinct_structures'] <= sh['bucketed_8'] <= sh['materialised']
  assert sh['bucketed_16'] <= sh['bucketed_8']


def test_compile_in_threads_compiles_each_program_once():
  """Executables compiled in threads compute what the jitted functions do,
  keep donation, and need no compile when called."""
  fns = [
      jax.jit(lambda x, y, k=k: (x * k + y, x.sum()), donate_argnums=0)
      for k in range(4)
  ]
  x = jax.ShapeDtypeStruct((5,), jnp.float32)
  counter = bench.CompileCounter()
  counter.start()
  execs = bench.compile_in_threads(fns, [(x, 2.0)] * 4, workers=3)
  assert counter.stop()[0] == 4
  args = [jnp.arange(5.0) for _ in execs]
  counter.start()
  for k, (f, arg) in enumerate(zip(execs, args)):
    out, total = f(arg, 2.0)
    np.testing.assert_allclose(out, np.arange(5.0) * k + 2.0)
    assert float(total) == 10.0 and arg.is_deleted()
  assert counter.stop()[0] == 0
