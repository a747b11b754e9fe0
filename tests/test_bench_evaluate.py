"""The evaluation benchmark counts compiles and reports throughput."""

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
