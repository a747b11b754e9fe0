"""bench.proposals: the first proposals' compression against the prior."""

from configs import digits
from esnac_jax.bench import proposals


def test_rows_and_table():
  config = digits.get_config()
  config.search.esnac.pool_size = 32
  config.search.surrogate.update(hidden=8, num_layers=1, max_steps=4)
  rows = proposals.first_proposals(config, ['resnet18'],
                                   seeds=1,
                                   per_step=3,
                                   samples=20)
  [row] = rows
  assert row['teacher'] == 'resnet18' and row['params'] > 0
  for part in ('prior', 'first_proposals'):
    q = row[part]
    assert 1.0 <= q['p10'] <= q['median'] <= q['p90']
  assert 'resnet18' in proposals.format_rows(rows)
