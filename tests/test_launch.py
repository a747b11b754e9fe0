"""launch/: --help, dry runs, bad input, and the detached start command run
for real on this machine (as ssh would run it)."""

import os
import shlex
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU = os.path.join(ROOT, 'launch', 'tpu_vm.py')
GPU = os.path.join(ROOT, 'launch', 'gpu_host.py')
with open(os.path.join(ROOT, 'requirements.txt')) as _f:
  JAX = [l.split('==')[1].strip() for l in _f if l.startswith('jax==')][0]


def _run(script, *args):
  return subprocess.run([sys.executable, script, *args],
                        capture_output=True,
                        text=True,
                        timeout=60)


def _dry(script, *args):
  p = _run(script, '--dry_run', *args)
  assert p.returncode == 0, p.stderr
  return [shlex.split(line) for line in p.stdout.splitlines()]


@pytest.mark.parametrize('script', [TPU, GPU])
def test_help_lists_commands(script):
  p = _run(script, '--help')
  assert p.returncode == 0
  for command in ('install', 'start', 'status', 'fetch'):
    assert command in p.stdout


def test_tpu_dry_runs():
  z = ['--name=vm1', '--zone=us-central2-b', '--project=proj']
  [create] = _dry(TPU, 'create', *z, '--accelerator=v4-8', '--spot')
  assert create[:5] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create']
  assert {
      'vm1', '--accelerator-type=v4-8', '--zone=us-central2-b',
      '--project=proj', '--spot'
  } <= set(create)
  pack, scp, ssh = _dry(TPU, 'install', *z)
  assert pack[:2] == ['git', '-C'] and 'HEAD' in pack
  assert 'vm1:' in scp and '--worker=all' in scp
  script = [a for a in ssh if a.startswith('--command=')][0]
  assert f"jax[tpu]=={JAX}" in script and '--worker=all' in ssh
  [start] = _dry(TPU, 'start', *z, '--config=configs/resnet18.py:faithful',
                 '--workdir=runs/r18', '--override=search.steps=5',
                 '--sync_to=gs://b/r18')
  script = [a for a in start if a.startswith('--command=')][0]
  inner = shlex.split(script[len('--command='):])
  assert '--worker=0' in start and 'nohup' in inner
  job, sync = inner[inner.index('-c') + 1].split('; ')
  assert shlex.split(job)[:3] == ['python', '-m', 'esnac_jax.main']
  assert shlex.split(job)[-1] == '--config.search.steps=5'
  assert shlex.split(sync) == [
      'gsutil', '-m', 'rsync', '-r', 'runs/r18', 'gs://b/r18'
  ]
  [pod] = _dry(TPU, 'start', *z, '--config=configs/resnet18.py',
               '--workdir=/mnt/shared/r18', '--all_workers')
  assert '--worker=all' in pod
  inner = shlex.split([a for a in pod if a.startswith('--command=')
                      ][0][len('--command='):])
  job = shlex.split(inner[inner.index('-c') + 1])
  assert {
      '--config.distributed.initialize=True',
      '--config.distill.path=masked_vmap'
  } <= set(job)
  p = _run(TPU, '--dry_run', 'start', *z, '--config=c.py', '--workdir=runs/r18',
           '--all_workers')
  assert p.returncode != 0 and 'every worker must see one workdir' in p.stderr
  fetch = _dry(TPU, 'fetch', *z, '--workdir=runs/r18', '--to=out')
  assert fetch[0] == ['mkdir', '-p', 'out']
  assert any('vm1:esnac_jax/runs/r18/results.json' in c for c in fetch)
  [delete] = _dry(TPU, 'delete', *z)
  assert 'delete' in delete and '--quiet' in delete


def test_gpu_dry_run_install_uses_the_cuda_build():
  _, scp, ssh = _dry(GPU, 'install', '--host=me@box', '--cuda=13')
  assert scp[0] == 'scp' and scp[-1] == 'me@box:'
  assert ssh[:2] == ['ssh', 'me@box'] and f'jax[cuda13]=={JAX}' in ssh[2]


@pytest.mark.parametrize('args,message', [
    (['start', '--host=h', '--config=c.py', '--workdir=gs://b/x'
     ], 'must be a path on the machine'),
    (['start', '--host=h', '--config=c.py', '--workdir=w', '--override=steps'
     ], 'must look like'),
    (['fetch', '--host=h', '--workdir=w'], '--to'),
    ([], 'choose a command'),
])
def test_bad_input(args, message):
  p = _run(GPU, '--dry_run', *args)
  assert p.returncode != 0 and message in p.stderr
  assert 'Traceback' not in p.stderr


@pytest.mark.slow
def test_start_runs_detached_and_logs(tmp_path):
  """The remote shell `start` sends runs here as ssh would: detached, the
  search's own output (here its one-line config error) in WORKDIR.log."""
  home = tmp_path / 'home'
  proj = home / 'esnac_jax'
  (proj / '.venv' / 'bin').mkdir(parents=True)
  for d in ('esnac_jax', 'configs'):
    os.symlink(os.path.join(ROOT, d), proj / d)
  bindir = os.path.dirname(sys.executable)  # holds `python` in a venv
  (proj / '.venv' / 'bin' /
   'activate').write_text(f'PATH={shlex.quote(str(bindir))}:$PATH\n')
  [cmd] = _dry(GPU, 'start', '--host=me@box', '--config=configs/digits.py',
               '--workdir=runs/d', '--override=search.steps=-2')
  env = dict(os.environ, HOME=str(home), JAX_PLATFORMS='cpu')
  p = subprocess.run(['sh', '-c', cmd[2]],
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=60)
  assert p.returncode == 0 and 'started' in p.stdout
  log = proj / 'runs' / 'd.log'
  deadline = time.time() + 120
  while time.time() < deadline and 'error:' not in (log.read_text()
                                                    if log.exists() else ''):
    time.sleep(0.5)
  assert 'error: config.search.steps must be >= 1, got -2' in log.read_text()
