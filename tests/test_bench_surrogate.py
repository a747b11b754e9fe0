"""The surrogate benchmark runs end to end at tiny sizes and writes JSON."""

import json

import pytest

from esnac_jax.bench import surrogate as bench


@pytest.mark.slow
def test_quick_benchmark(tmp_path, capsys):
  res = bench.run('resnet18',
                  n=12,
                  k=2,
                  m=10,
                  steps=2,
                  repeats=1,
                  variants=['default', 'independent', 'shared', 'original_way'],
                  hidden=8,
                  layers=2,
                  lstms=('custom', 'flax'))
  rows = {r['name']: r for r in res['rows']}
  assert set(rows) == {
      'default', 'independent', 'shared', 'original_way', 'default[flax]',
      'independent[flax]', 'shared[flax]'
  }
  for name in ('default', 'independent', 'shared'):  # the same work
    assert rows[name]['flops'] == rows[f'{name}[flax]']['flops']
  assert res['machine']['matmul_flops_per_s'] > 1e8
  proj = res['machine']['projection_flops_per_s']
  assert proj > 1e7
  for r in rows.values():
    assert r['steady_s'] > 0 and r['flops'] > 0
    assert 0 < r['fraction_of_matmul_rate'] < 1.5
    assert r['fraction_of_projection_rate'] == pytest.approx(
        r['flops'] / r['steady_s'] / proj)
  # The shared embedding does less work than K separate ones, and the
  # default (shared, half size, fewer features) less again.
  assert rows['default']['flops'] < rows['shared']['flops'] < \
      rows['independent']['flops']
  assert 'normalized features' in rows['default']['note']
  bench.print_table(res)
  out = capsys.readouterr().out
  assert 'original_way' in out and 'GFLOP/s' in out
  path = tmp_path / 'r.json'
  path.write_text(json.dumps(res))
  assert json.loads(path.read_text())['sizes']['kernels'] == 2
  with pytest.raises(ValueError, match="unknown variant 'bogus'"):
    bench.run('resnet18',
              n=4,
              k=2,
              m=2,
              steps=1,
              repeats=1,
              variants=['bogus'],
              hidden=4,
              layers=1)


def test_unknown_lstm_is_refused_before_work():
  with pytest.raises(ValueError, match="unknown lstm_impl 'torch'"):
    bench.run('resnet18',
              n=4,
              k=2,
              m=2,
              steps=1,
              repeats=1,
              variants=['default'],
              lstms=('custom', 'torch'))


def test_default_row_is_the_search_default():
  """The row called default times what the search runs by default."""
  from configs import common
  c = common.get_base_config('default')
  f = common.get_base_config('faithful')
  row = bench.DEFAULT_ROW
  assert c.search.esnac.shared_lstm == row['shared']
  assert c.search.esnac.features == row['features']
  assert c.search.surrogate.objective == row['objective']
  d = row['size_divisor']
  assert (c.search.surrogate.hidden * d, c.search.surrogate.num_layers * d) \
      == (f.search.surrogate.hidden, f.search.surrogate.num_layers) == (64, 4)


def test_projection_rate_is_a_plausible_matmul_rate():
  # Shapes big enough to time: the rate must be of the order of the square
  # matmul rate (a FLOP miscount by the 8H or layer factors would not be).
  proj = bench.projection_rate(2, 4096, 96, 32, 3, reps=3)
  square = bench.matmul_rate(512)
  assert 0.02 < proj / square < 3.0, (proj, square)


def test_flop_model():
  # One layer, one direction: L * (2*F*4H + 2*H*4H + 12H), two directions.
  assert bench.lstm_flops(10, 3, 2, 1) == 2 * 10 * (2 * 3 * 8 + 2 * 2 * 8 + 24)
