"""The surrogate benchmark runs end to end at tiny sizes and writes JSON."""

import json

from esnac_jax.bench import surrogate as bench


def test_quick_benchmark(tmp_path, capsys):
  res = bench.run('resnet18', n=12, k=2, m=10, steps=2, kind='normalized',
                  repeats=1, variants=['default', 'shared', 'original_way'],
                  hidden=8, layers=1)
  rows = {r['name']: r for r in res['rows']}
  assert set(rows) == {'default', 'shared', 'original_way'}
  assert res['machine']['matmul_flops_per_s'] > 1e8
  for r in rows.values():
    assert r['steady_s'] > 0 and r['flops'] > 0
    assert 0 < r['fraction_of_matmul_rate'] < 1.5
  # The shared embedding does less work than K separate ones.
  assert rows['shared']['flops'] < rows['default']['flops']
  bench.print_table(res)
  out = capsys.readouterr().out
  assert 'original_way' in out and 'GFLOP/s' in out
  path = tmp_path / 'r.json'
  path.write_text(json.dumps(res))
  assert json.loads(path.read_text())['sizes']['kernels'] == 2


def test_flop_model():
  # One layer, one direction: L * (2*F*4H + 2*H*4H + 12H), two directions.
  assert bench.lstm_flops(10, 3, 2, 1) == 2 * 10 * (2 * 3 * 8 + 2 * 2 * 8 +
                                                     24)
