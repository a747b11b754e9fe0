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


def start_script(config: str,
                 workdir: str,
                 overrides: Sequence[str],
                 sync_to: str = '') -> str:
  """Remote shell: the search, detached (survives the ssh session), its log
  in WORKDIR.log; with `sync_to` (gs://...), the workdir is copied there
  when the search ends."""
  job = [
      'python', '-m', 'esnac_jax.main', f'--config={config}',
      f'--workdir={workdir}'
  ] + [f'--config.{o}' for o in overrides]
  inner = shlex.join(job)
  if sync_to:
    inner += f'; gsutil -m rsync -r {shlex.quote(workdir)} ' \
             f'{shlex.quote(sync_to)}'
  log = shlex.quote(workdir.rstrip('/') + '.log')
  parent = os.path.dirname(workdir.rstrip('/'))
  mkdir = f'mkdir -p {shlex.quote(parent)} && ' if parent else ''
  return (f'cd ~/{REMOTE_DIR} && . .venv/bin/activate && {mkdir}'
          f'nohup setsid sh -c {shlex.quote(inner)} > {log} 2>&1 < /dev/null '
          f'& echo started; echo log: {log}')


def status_script(workdir: str) -> str:
  log = shlex.quote(workdir.rstrip('/') + '.log')
  return (f'cd ~/{REMOTE_DIR} && (pgrep -af esnac_jax.main || '
          f'echo "no search running") && tail -n 5 {log}')


RESULT_FILES = ('results.json', 'pareto.png', 'reward.png')


def remote_path(workdir: str, name: str) -> str:
  """An scp source for a file of the workdir (relative to the remote
  home, where scp starts)."""
  return f'{REMOTE_DIR}/{workdir.rstrip("/")}/{name}'


def check_workdir(workdir: str) -> None:
  if not workdir or workdir.startswith('gs://'):
    raise SystemExit('error: --workdir must be a path on the machine (e.g. '
                     'runs/r18); use --sync_to=gs://... to copy it to GCS '
                     'when the search ends')


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
                 help='workdir on the machine, relative to the project')
  p.add_argument('--override',
                 action='append',
                 default=[],
                 metavar='KEY=VALUE',
                 help='config override, repeatable (search.steps=5)')
  p.add_argument('--sync_to',
                 default='',
                 help='gs://bucket/path: copy the workdir there at the end')


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
