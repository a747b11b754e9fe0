"""What the launch scripts share: shipping the project, the remote install,
the detached search command, dry runs.

Every script builds its commands as argv lists first; `--dry_run` prints
them (shell-quoted, one per line) instead of running them, so what a
script would do can be read and tested without a cloud account.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from typing import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Cmd = list[str]
REMOTE_DIR = 'esnac_jax'  # under the remote user's home
TARBALL = '/tmp/esnac_jax_src.tar.gz'


def jax_version() -> str:
  """The JAX version requirements.txt pins (the accelerator build must match)."""
  with open(os.path.join(ROOT, 'requirements.txt')) as f:
    m = re.search(r'^jax==(\S+)', f.read(), re.M)
  if not m:
    raise SystemExit('error: requirements.txt does not pin jax==VERSION')
  return m.group(1)


def pack_command() -> Cmd:
  """Packs the committed tree (what `git archive HEAD` holds)."""
  return [
      'git', '-C', ROOT, 'archive', '--format=tar.gz', '-o', TARBALL, 'HEAD'
  ]


def install_script(jax_extra: str) -> str:
  """Remote shell: unpack, make a venv, install the pins and the
  accelerator build of the pinned JAX."""
  return ' && '.join([
      f'mkdir -p ~/{REMOTE_DIR}',
      f'tar -xzf ~/{os.path.basename(TARBALL)} -C ~/{REMOTE_DIR}',
      f'cd ~/{REMOTE_DIR}', 'python3 -m venv .venv', '. .venv/bin/activate',
      'pip install -q -r requirements.txt',
      f'pip install -q {shlex.quote(f"jax[{jax_extra}]=={jax_version()}")}',
      'python -c "import jax; print(jax.devices())"'
  ])


def is_bucket(path: str) -> bool:
  return path.startswith(('gs://', 's3://'))


def log_path(workdir: str) -> str:
  """The job's log on the machine: WORKDIR.log beside a local workdir,
  logs/BUCKET_PATH.log (under the project) for a workdir on a bucket."""
  w = workdir.rstrip('/')
  if is_bucket(w):
    return 'logs/' + re.sub(r'[^A-Za-z0-9._-]+', '_', w.split('://', 1)[1]) \
        + '.log'
  return w + '.log'


SYNC_EVERY_S = 120
RESULT_FILES = ('results.json', 'pareto.png', 'reward.png')
# What `fetch` brings back from a local workdir: (name, is a folder).
FETCHED = [(f, False) for f in RESULT_FILES] + [('tb', True)]


def start_script(config: str,
                 workdir: str,
                 overrides: Sequence[str],
                 sync_to: str = '',
                 sync_every_s: int = SYNC_EVERY_S) -> str:
  """Remote shell: the search, detached (survives the ssh session), its log
  in `log_path(workdir)`.

  A workdir on a bucket (gs://...) holds every checkpoint as it is written;
  the log is copied beside it (WORKDIR/job.log) every `sync_every_s` and at
  the end. With a local workdir and `sync_to` (gs://...), the bucket is
  first copied into the workdir (a fresh VM resumes where a preempted one
  stopped), then the workdir is copied to the bucket every `sync_every_s`
  and when the search ends. The shell exits with the search's status.
  """
  job = [
      'python', '-m', 'esnac_jax.main', f'--config={config}',
      f'--workdir={workdir}'
  ] + [f'--config.{o}' for o in overrides]
  log = log_path(workdir)
  q = shlex.quote
  if is_bucket(workdir):
    sync = f'gsutil -q cp {q(log)} {q(workdir.rstrip("/") + "/job.log")}'
    restore = ''
  elif sync_to:
    sync = f'gsutil -m -q rsync -r {q(workdir)} {q(sync_to)}'
    restore = (f'if gsutil -q ls {q(sync_to)} > /dev/null 2>&1; then '
               f'gsutil -m -q rsync -r {q(sync_to)} {q(workdir)}; fi; ')
  else:
    sync = restore = ''
  if sync:
    inner = (f'{restore}(while sleep {int(sync_every_s)}; do {sync}; done) & '
             f'loop=$!; {shlex.join(job)}; rc=$?; kill $loop; {sync}; '
             'exit $rc')
  else:
    inner = shlex.join(job)
  folders = {os.path.dirname(log)}
  if not is_bucket(workdir):
    folders.add(os.path.dirname(workdir.rstrip('/')))
  folders.discard('')
  mkdir = f'mkdir -p {" ".join(q(f) for f in sorted(folders))} && ' \
      if folders else ''
  return (f'cd ~/{REMOTE_DIR} && . .venv/bin/activate && {mkdir}'
          f'nohup setsid sh -c {q(inner)} > {q(log)} 2>&1 < /dev/null '
          f'& echo started; echo log: {q(log)}')


def prepare_script(dataset: str, data_dir: str) -> str:
  """Remote shell: prepare a TFDS dataset (array_record) under data_dir."""
  cmd = ['python', '-m', 'esnac_jax.data.prepare', f'--dataset={dataset}']
  if data_dir:
    cmd.append(f'--data_dir={data_dir}')
  return f'cd ~/{REMOTE_DIR} && . .venv/bin/activate && {shlex.join(cmd)}'


def export_script(workdir: str) -> str:
  """Remote shell: the chosen student as WORKDIR/student.onnx."""
  cmd = [
      'python', '-m', 'esnac_jax.export', f'--workdir={workdir}',
      '--format=onnx', f'--out={workdir.rstrip("/")}/student.onnx'
  ]
  return f'cd ~/{REMOTE_DIR} && . .venv/bin/activate && {shlex.join(cmd)}'


def bucket_fetch(workdir: str, to: str) -> list[Cmd]:
  """Copies of a bucket workdir's results, plots, TensorBoard events, log
  and exported student into `to` (run where the launch script runs)."""
  w = workdir.rstrip('/')
  return [['gsutil', '-m', 'cp'] +
          [f'{w}/{f}' for f in RESULT_FILES + ('job.log',)] + [to],
          ['gsutil', '-m', 'cp', '-r', f'{w}/tb', to],
          ['gsutil', 'cp', f'{w}/student.onnx', to]]


def status_script(workdir: str) -> str:
  log = shlex.quote(log_path(workdir))
  return (f'cd ~/{REMOTE_DIR} && (pgrep -af esnac_jax.main || '
          f'echo "no search running") && tail -n 5 {log}')


def remote_path(workdir: str, name: str = '') -> str:
  """An scp source for a file of the workdir (relative to the remote
  home, where scp starts, unless the workdir is absolute)."""
  return os.path.join(REMOTE_DIR, workdir.rstrip('/'), name).rstrip('/')


def check_workdir(workdir: str, sync_to: str = '') -> None:
  if not workdir:
    raise SystemExit('error: --workdir is empty')
  if sync_to and is_bucket(workdir):
    raise SystemExit(f'error: --workdir={workdir} is already on a bucket, '
                     'where every checkpoint is written as it is made; '
                     'drop --sync_to')
  if sync_to and not is_bucket(sync_to):
    raise SystemExit(f'error: --sync_to={sync_to} must be gs://BUCKET/PATH')


def check_overrides(overrides: Sequence[str]) -> None:
  for o in overrides:
    if '=' not in o or o.startswith('-'):
      raise SystemExit(f'error: --override {o!r} must look like '
                       'search.steps=5 (a config key, =, a value)')


def add_search_args(p: argparse.ArgumentParser) -> None:
  p.add_argument('--config',
                 required=True,
                 help='config file and argument, e.g. configs/resnet18.py or '
                 'configs/resnet18.py:faithful')
  p.add_argument('--workdir',
                 required=True,
                 help='gs://BUCKET/PATH (preemption-safe: every checkpoint '
                 'is written there; rerunning start on a fresh VM resumes), '
                 'or a folder on the machine relative to the project')
  p.add_argument('--override',
                 action='append',
                 default=[],
                 metavar='KEY=VALUE',
                 help='config override, repeatable (search.steps=5)')
  p.add_argument('--sync_to',
                 default='',
                 help='with a local workdir, gs://BUCKET/PATH: restored from '
                 'at start, copied to every --sync_every_s and at the end')
  p.add_argument('--sync_every_s',
                 type=int,
                 default=SYNC_EVERY_S,
                 help='seconds between copies of the workdir (or, on a '
                 'bucket, of the log)')


def run(cmds: Sequence[Cmd], dry_run: bool) -> None:
  """Runs the commands in order (stopping at the first failure), or prints
  them."""
  for c in cmds:
    if dry_run:
      print(shlex.join(c))
      continue
    print(f'+ {shlex.join(c)}', flush=True)
    rc = subprocess.run(c).returncode
    if rc:
      raise SystemExit(f'error: command failed with exit status {rc}: '
                       f'{shlex.join(c)}')


def main_parser(description: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      description=description,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--dry_run',
                 action='store_true',
                 help='print the commands instead of running them')
  return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None):
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  if not getattr(args, 'command', None):
    p.error('choose a command')
  return args
