"""The feed benchmark measures both feeds and the steps they feed."""

import json
import os
import subprocess
import sys

import numpy as np

from esnac_jax.bench import feed as bench


def test_cifar_like_has_the_cifar_recipe():
  ds = bench.cifar_like(300)
  assert ds.image_shape == (32, 32, 3) and ds.train.images.dtype == np.uint8
  assert (ds.augment_crop, ds.augment_flip, ds.num_classes) == (4, True, 100)


def test_command_writes_rates(tmp_path):
  out = tmp_path / 'feed.json'
  p = subprocess.run([
      sys.executable, '-m', 'esnac_jax.bench.feed', '--width=0.125',
      '--images=256', '--batch=32', '--children=1', '--steps=2',
      '--feed_batches=3', f'--out={out}'
  ],
                     capture_output=True,
                     text=True,
                     env=dict(os.environ, JAX_PLATFORMS='cpu'),
                     timeout=600)
  assert p.returncode == 0, p.stderr[-2000:]
  doc = json.loads(out.read_text())
  assert set(doc['feed_images_per_s']) == {'host', 'device'}
  assert all(v > 0 for v in doc['feed_images_per_s'].values())
  assert [r['name'] for r in doc['networks']] == ['teacher', 'child 0']
  for r in doc['networks']:
    assert min(r['fixed_batch'], r['host'], r['device']) > 0
  assert 'host feed alone' in p.stdout and 'fed by host' in p.stdout
