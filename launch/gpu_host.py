"""Runs a search on a (multi-)GPU host you can reach with ssh.

  python launch/gpu_host.py --dry_run install --host=me@gpu-box
  python launch/gpu_host.py prepare-data --host=me@gpu-box --dataset=cifar10
  python launch/gpu_host.py start --host=me@gpu-box \\
      --config=configs/resnet18.py --workdir=runs/r18
  python launch/gpu_host.py status --host=me@gpu-box --workdir=runs/r18
  python launch/gpu_host.py fetch --host=me@gpu-box --workdir=runs/r18 \\
      --to=results/r18

`install` ships the committed tree (git archive HEAD) and installs
requirements.txt plus the CUDA build of the pinned JAX (--cuda=12|13).
`start` runs `python -m esnac_jax.main` detached (it sees every GPU of the
host; rerunning `start` resumes the search); its log is WORKDIR.log.
`fetch` brings back results.json, the plots, tb/, the log and the chosen
student exported to ONNX. With --dry_run every command prints instead of
running.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (a script beside its helpers)


def commands(args) -> list[list[str]]:
  """The commands a subcommand runs, in order."""
  c, host = args.command, args.host
  if c == 'install':
    return [
        common.pack_command(), ['scp', common.TARBALL, f'{host}:'],
        ['ssh', host, common.install_script(f'cuda{args.cuda}')]
    ]
  if c == 'prepare-data':
    return [['ssh', host, common.prepare_script(args.dataset, args.data_dir)]]
  if c == 'start':
    common.check_workdir(args.workdir, args.sync_to)
    common.check_overrides(args.override)
    return [[
        'ssh', host,
        common.start_script(args.config, args.workdir, args.override,
                            args.sync_to, args.sync_every_s)
    ]]
  if c == 'status':
    return [['ssh', host, common.status_script(args.workdir)]]
  if c == 'fetch':
    w, to = args.workdir, args.to
    export = ['ssh', host, common.export_script(w)]
    if common.is_bucket(w):
      copies = common.bucket_fetch(w, to)
      return [['mkdir', '-p', to]] + copies[:-1] + [export, copies[-1]]

    def scp(path, folder=False):
      return ['scp', *(['-r'] if folder else []), f'{host}:{path}', to]

    return [['mkdir', '-p', to]
           ] + [scp(common.remote_path(w, f), d) for f, d in common.FETCHED] + [
               scp(common.remote_path(common.log_path(w))), export,
               scp(common.remote_path(w, 'student.onnx'))
           ]
  raise AssertionError(c)


def parser():
  p = common.main_parser(__doc__)
  sub = p.add_subparsers(dest='command', metavar='COMMAND')

  def add(name, help_):
    s = sub.add_parser(name, help=help_)
    s.add_argument('--host', required=True, help='ssh destination, user@host')
    return s

  add('install',
      'ship the committed tree and install it with CUDA JAX').add_argument(
          '--cuda',
          choices=('12', '13'),
          default='12',
          help='CUDA major version of the driver')
  s = add('prepare-data', 'prepare a TFDS dataset (array_record) once')
  s.add_argument('--dataset',
                 default='cifar10',
                 help='cifar10, cifar100 or tfds:NAME')
  s.add_argument('--data_dir',
                 default='',
                 help='a folder on the host or gs://BUCKET/tfds; pass the '
                 'same to start as --override=data_dir=...')
  common.add_search_args(add('start', 'start a search, detached'))
  add('status', 'is it running; the log tail').add_argument('--workdir',
                                                            required=True)
  s = add(
      'fetch', 'copy results.json, the plots, tb/, the log and the chosen '
      'student (exported to ONNX) here')
  s.add_argument('--workdir', required=True)
  s.add_argument('--to', required=True, help='local directory')
  return p


def main(argv=None) -> None:
  args = common.parse(parser(), argv)
  common.run(commands(args), args.dry_run)


if __name__ == '__main__':
  main()
