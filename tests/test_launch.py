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
  shell = inner[inner.index('-c') + 1]
  job = [shlex.split(s) for s in shell.split('; ') if 'esnac_jax.main' in s][0]
  assert job[:3] == ['python', '-m', 'esnac_jax.main']
  assert job[-1] == '--config.search.steps=5'
  # The bucket is restored first, copied to while the job runs and after.
  restore = shell.index('rsync -r gs://b/r18 runs/r18')
  assert restore < shell.index('while sleep 120')
  assert shell.index('esnac_jax.main') < shell.rindex(
      'rsync -r runs/r18 gs://b/r18')
  assert shell.endswith('exit $rc')
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
  for name in ('results.json', 'reward.png', 'student.onnx'):
    assert any(f'vm1:esnac_jax/runs/r18/{name}' in c for c in fetch), name
  assert any(
      'vm1:esnac_jax/runs/r18/tb' in c and '--recurse' in c for c in fetch)
  assert any('vm1:esnac_jax/runs/r18.log' in c for c in fetch)
  export = [c for c in fetch if 'ssh' in c][0]
  assert any('--out=runs/r18/student.onnx' in a for a in export)
  [delete] = _dry(TPU, 'delete', *z)
  assert 'delete' in delete and '--quiet' in delete


def test_tpu_dry_runs_with_the_workdir_on_a_bucket():
  """The preemption-safe form: prepare the data onto a bucket once, write
  the workdir there, fetch everything from it."""
  z = ['--name=vm1', '--zone=us-central2-b']
  [prep] = _dry(TPU, 'prepare-data', *z, '--dataset=cifar100',
                '--data_dir=gs://b/tfds')
  assert '--worker=0' in prep  # one preparation serves every VM
  assert 'esnac_jax.data.prepare --dataset=cifar100 --data_dir=gs://b/tfds' \
      in prep[-2]
  [local_prep] = _dry(TPU, 'prepare-data', *z, '--data_dir=/data/tfds')
  assert '--worker=all' in local_prep
  [start] = _dry(TPU, 'start', *z, '--config=configs/resnet18.py',
                 '--workdir=gs://b/r18', '--override=data_dir=gs://b/tfds',
                 '--sync_every_s=30')
  script = [a for a in start if a.startswith('--command=')][0]
  assert 'mkdir -p logs' in script and 'gs:' not in script.split('nohup')[0]
  assert '> logs/b_r18.log' in script
  shell = shlex.split(script[len('--command='):])
  shell = shell[shell.index('-c') + 1]
  assert 'while sleep 30; do gsutil -q cp logs/b_r18.log gs://b/r18/job.log' \
      in shell
  assert '--workdir=gs://b/r18 --config.data_dir=gs://b/tfds' in shell
  fetch = _dry(TPU, 'fetch', *z, '--workdir=gs://b/r18', '--to=out')
  copied = ' '.join(' '.join(c) for c in fetch if c[0] == 'gsutil')
  for name in ('results.json', 'pareto.png', 'job.log', 'tb', 'student.onnx'):
    assert f'gs://b/r18/{name}' in copied, name
  [export] = [c for c in fetch if 'ssh' in c]
  assert '--out=gs://b/r18/student.onnx' in export[-2]
  assert fetch.index(export) == len(fetch) - 2  # results come first
  [gpu_prep] = _dry(GPU, 'prepare-data', '--host=me@box')
  assert gpu_prep[:2] == ['ssh', 'me@box'] and 'cifar10' in gpu_prep[2]


def test_gpu_dry_run_install_uses_the_cuda_build():
  _, scp, ssh = _dry(GPU, 'install', '--host=me@box', '--cuda=13')
  assert scp[0] == 'scp' and scp[-1] == 'me@box:'
  assert ssh[:2] == ['ssh', 'me@box'] and f'jax[cuda13]=={JAX}' in ssh[2]


@pytest.mark.parametrize('args,message', [
    ([
        'start', '--host=h', '--config=c.py', '--workdir=gs://b/x',
        '--sync_to=gs://b/y'
    ], 'already on a bucket'),
    (['start', '--host=h', '--config=c.py', '--workdir=w', '--sync_to=/mnt/x'
     ], 'must be gs://'),
    (['start', '--host=h', '--config=c.py', '--workdir=w', '--override=steps'
     ], 'must look like'),
    (['fetch', '--host=h', '--workdir=w'], '--to'),
    ([], 'choose a command'),
])
def test_bad_input(args, message):
  p = _run(GPU, '--dry_run', *args)
  assert p.returncode != 0 and message in p.stderr
  assert 'Traceback' not in p.stderr


def _remote_home(tmp_path):
  """A home as `install` leaves it: ~/esnac_jax with the project and a
  venv whose activate puts this Python first."""
  home = tmp_path / 'home'
  proj = home / 'esnac_jax'
  (proj / '.venv' / 'bin').mkdir(parents=True)
  for d in ('esnac_jax', 'configs'):
    os.symlink(os.path.join(ROOT, d), proj / d)
  bindir = os.path.dirname(sys.executable)  # holds `python` in a venv
  (proj / '.venv' / 'bin' /
   'activate').write_text(f'PATH={shlex.quote(str(bindir))}:$PATH\n')
  return home, proj


def _wait_for(path, text, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline and text not in (path.read_text()
                                                if path.exists() else ''):
    time.sleep(0.5)
  return path.read_text() if path.exists() else ''


@pytest.mark.slow
def test_start_runs_detached_and_logs(tmp_path):
  """The remote shell `start` sends runs here as ssh would: detached, the
  search's own output (here its one-line config error) in WORKDIR.log."""
  home, proj = _remote_home(tmp_path)
  [cmd] = _dry(GPU, 'start', '--host=me@box', '--config=configs/digits.py',
               '--workdir=runs/d', '--override=search.steps=-2')
  env = dict(os.environ, HOME=str(home), JAX_PLATFORMS='cpu')
  p = subprocess.run(['sh', '-c', cmd[2]],
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=60)
  assert p.returncode == 0 and 'started' in p.stdout
  log = _wait_for(proj / 'runs' / 'd.log', 'error:')
  assert 'error: config.search.steps must be >= 1, got -2' in log


# gsutil for the test below: gs://NAME is $BUCKETS/NAME; it logs its calls.
FAKE_GSUTIL = r"""#!/bin/sh
echo "gsutil $*" >> "$GSUTIL_LOG"
map() { case "$1" in gs://*) echo "$BUCKETS/${1#gs://}";; *) echo "$1";; esac; }
while [ "${1#-}" != "$1" ]; do shift; done
cmd=$1; shift
[ "$cmd" = rsync ] && shift  # -r
[ "$cmd" = cp ] && [ "$1" = -r ] && shift
case $cmd in
  ls) test -e "$(map "$1")";;
  rsync) mkdir -p "$(map "$2")" && cp -R "$(map "$1")"/. "$(map "$2")"/;;
  cp) mkdir -p "$(dirname "$(map "$2")")" && cp -R "$(map "$1")" "$(map "$2")";;
esac
"""


@pytest.mark.slow
def test_start_with_sync_restores_then_copies_back(tmp_path):
  """A relaunch on a fresh machine: `start --sync_to` first copies the
  bucket into the (empty) workdir, and copies the workdir back to the
  bucket when the search ends; the log of a bucket workdir lands beside
  it."""
  home, proj = _remote_home(tmp_path)
  bindir = tmp_path / 'bin'
  bindir.mkdir()
  (bindir / 'gsutil').write_text(FAKE_GSUTIL)
  (bindir / 'gsutil').chmod(0o755)
  buckets = tmp_path / 'buckets'
  (buckets / 'b' / 'r18' / 'search').mkdir(parents=True)
  (buckets / 'b' / 'r18' / 'search' / 'saved').write_text('step 3')
  calls = tmp_path / 'gsutil.log'
  env = dict(os.environ,
             HOME=str(home),
             JAX_PLATFORMS='cpu',
             PATH=f'{bindir}:{os.environ["PATH"]}',
             BUCKETS=str(buckets),
             GSUTIL_LOG=str(calls))
  [cmd] = _dry(GPU, 'start', '--host=me@box', '--config=configs/digits.py',
               '--workdir=runs/r18', '--sync_to=gs://b/r18',
               '--override=search.steps=-2')
  p = subprocess.run(['sh', '-c', cmd[2]],
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=60)
  assert p.returncode == 0, p.stderr
  assert 'steps must be >= 1' in _wait_for(proj / 'runs' / 'r18.log', 'error:')
  _wait_for(calls, 'rsync -r runs/r18 gs://b/r18')
  assert (proj / 'runs' / 'r18' / 'search' / 'saved').read_text() == 'step 3'
  lines = calls.read_text().splitlines()
  assert lines[0].startswith('gsutil -q ls gs://b/r18')
  assert 'rsync -r gs://b/r18 runs/r18' in lines[1]
  assert 'rsync -r runs/r18 gs://b/r18' in lines[-1]

  # A workdir on the bucket: no local folder, the log copied beside it.
  [cmd] = _dry(GPU, 'start', '--host=me@box', '--config=configs/digits.py',
               '--workdir=gs://b/r34', '--override=search.steps=-2')
  p = subprocess.run(['sh', '-c', cmd[2]],
                     env=env,
                     capture_output=True,
                     text=True,
                     timeout=60)
  assert p.returncode == 0, p.stderr
  copied = _wait_for(buckets / 'b' / 'r34' / 'job.log', 'error:')
  assert 'steps must be >= 1' in copied
  assert not (proj / 'gs:').exists()
