"""The evaluation benchmark counts compiles and reports throughput."""

from esnac_jax.bench import evaluate as bench


def test_digits_rows():
  counter = bench.CompileCounter()
  rows = bench.run_setup('digits', [1, 2], steps=1, batch=16, counter=counter)
  assert [r['k'] for r in rows] == [1, 2]
  for r in rows:
    # One program per new child (plus small helpers), none in steady steps.
    assert r['compiles'] >= r['k']
    assert r['step_s'] > 0 and r['candidates_per_hour'] > 0
    assert r['candidates_per_hour_with_compile'] < r['candidates_per_hour']
    assert r['flops_per_step'] > 0
