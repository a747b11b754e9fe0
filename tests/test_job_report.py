"""job.report: atomic results, plots and TensorBoard events a reader can
parse (scalars and the run's provenance text)."""

import json
import os
import struct

from esnac_jax.job import report
from esnac_jax.search.record import Record


def _events(folder):
  """Every Event proto in the event files of `folder` (TFRecord framing:
  length, its CRC, data, its CRC)."""
  from tensorboardX.proto import event_pb2
  out = []
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), 'rb') as f:
      data = f.read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack('<Q', data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + n])
      out.append(event)
      i += 12 + n + 4
  return out


def test_metric_writer_scalars_and_provenance(tmp_path):
  w = report.MetricWriter(str(tmp_path / 'tb'))
  w.write_text('provenance', json.dumps({'git_commit': 'abc123'}))
  w.write_scalars(1, {'search/best_reward': 0.5})
  w.write_scalars(2, {'search/best_reward': 0.75})
  w.close()
  values = [(e.step, v.tag, v.simple_value)
            for e in _events(tmp_path / 'tb')
            for v in e.summary.value
            if v.tag == 'search/best_reward']
  assert values == [(1, 'search/best_reward', 0.5),
                    (2, 'search/best_reward', 0.75)]
  texts = [
      v.tensor.string_val[0].decode()
      for e in _events(tmp_path / 'tb')
      for v in e.summary.value
      if v.tag.startswith('provenance')
  ]
  assert len(texts) == 1 and 'abc123' in texts[0]


def test_results_and_plots_are_whole_files(tmp_path):
  path = tmp_path / 'out' / 'results.json'
  report.write_json(str(path), {'a': [1, 2]})
  assert json.loads(path.read_text()) == {'a': [1, 2]}
  recs = [
      Record(arch=None,
             val_acc=0.5 + i / 10,
             reward=0.3 + i / 10,
             params=1000 - 100 * i,
             flops=1,
             step=i) for i in range(3)
  ]
  report.plot_reward(str(tmp_path / 'out' / 'reward.png'), recs)
  report.plot_pareto(str(tmp_path / 'out' / 'pareto.png'), 2000, 0.9, recs)
  for name in ('reward.png', 'pareto.png'):
    assert (tmp_path / 'out' / name).read_bytes()[:4] == b'\x89PNG'
  assert sorted(os.listdir(tmp_path / 'out')) == \
      ['pareto.png', 'results.json', 'reward.png']


def test_the_pareto_section_holds_the_undominated_candidates():
  # (params, flops, val_acc): 1 beats 0 on both; 3 is smaller than 2 but
  # less accurate; FLOPs order differs from params order.
  rows = [(500, 90, 0.80), (400, 80, 0.85), (300, 70, 0.90), (100, 75, 0.60),
          (300, 60, 0.90)]
  cands = [
      dict(index=i, params=p, flops=f, times=1000 / p, val_acc=a)
      for i, (p, f, a) in enumerate(rows)
  ]
  front = report.pareto_section(cands)
  assert [c['index'] for c in front['params']] == [3, 2]  # ties: first
  assert [c['index'] for c in front['flops']] == [4]
  assert front['params'][0] == dict(index=3,
                                    params=100,
                                    flops=75,
                                    times=10.0,
                                    val_acc=0.60)
  assert report.pareto_section([]) == {'params': [], 'flops': []}


def test_candidates_carry_their_epochs_and_learning_curve():
  import numpy as np
  from conftest import tiny_teacher
  from esnac_jax.arch import SamplerConfig, sample
  t = tiny_teacher('resnet18')
  kid = sample(t, np.random.default_rng(0), SamplerConfig())
  recs = [
      Record(kid, kid.num_params, kid.flops, 0.6, 0.4, 1, 0, 2.0, 2, (0.6, 0.5))
  ]
  doc = report.results_dict({}, t, {
      'val_acc': 0.9,
      'test_acc': 0.9
  }, recs, 1, {}, None)
  c = json.loads(json.dumps(doc))['candidates'][0]
  assert (c['epochs'], c['curve'], c['best_epoch']) == (2, [0.6, 0.5], 0)
  assert Record.from_dict(
      dict(
          {
              k: c[k] for k in ('params', 'flops', 'val_acc', 'reward', 'step',
                               'best_epoch', 'epochs', 'curve')
          },
          arch=c['arch'],
          seconds=2.0)) == recs[0]
