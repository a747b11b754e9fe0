"""Runs a search on a Cloud TPU VM with gcloud.

  python launch/tpu_vm.py --dry_run create --name=esnac --zone=us-central2-b \\
      --accelerator=v4-8
  python launch/tpu_vm.py install --name=esnac --zone=us-central2-b
  python launch/tpu_vm.py prepare-data --name=esnac --zone=us-central2-b \\
      --dataset=cifar10 --data_dir=gs://my-bucket/tfds
  python launch/tpu_vm.py start --name=esnac --zone=us-central2-b \\
      --config=configs/resnet18.py --workdir=gs://my-bucket/esnac/r18 \\
      --override=data_dir=gs://my-bucket/tfds
  python launch/tpu_vm.py status --name=esnac --zone=us-central2-b \\
      --workdir=gs://my-bucket/esnac/r18
  python launch/tpu_vm.py fetch --name=esnac --zone=us-central2-b \\
      --workdir=gs://my-bucket/esnac/r18 --to=results/r18
  python launch/tpu_vm.py delete --name=esnac --zone=us-central2-b

`install` ships the committed tree (git archive HEAD) to every worker and
installs requirements.txt plus jax[tpu] of the pinned version. `start` runs
`python -m esnac_jax.main` detached on worker 0 (the search runs as one
process). With the workdir on a bucket every checkpoint is written there,
so after a preemption the same `create`, `install` and `start` on a fresh
VM resume the search. With --dry_run every command prints instead of
running.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (a script beside its helpers)


def _gcloud(args, *rest: str) -> list[str]:
  cmd = ['gcloud', 'compute', 'tpus', 'tpu-vm', *rest, f'--zone={args.zone}']
  if args.project:
    cmd.append(f'--project={args.project}')
  return cmd


def _ssh(args, script: str, worker: str = '0') -> list[str]:
  return _gcloud(args, 'ssh', args.name, f'--worker={worker}',
                 f'--command={script}')


def commands(args) -> list[list[str]]:
  """The commands a subcommand runs, in order."""
  c = args.command
  if c == 'create':
    cmd = _gcloud(args, 'create', args.name,
                  f'--accelerator-type={args.accelerator}',
                  f'--version={args.version}')
    return [cmd + (['--spot'] if args.spot else [])]
  if c == 'install':
    return [
        common.pack_command(),
        _gcloud(args, 'scp', common.TARBALL, f'{args.name}:', '--worker=all'),
        _ssh(args, common.install_script('tpu'), worker='all')
    ]
  if c == 'prepare-data':
    # A bucket is prepared once (worker 0); a local folder on every worker.
    worker = '0' if common.is_bucket(args.data_dir) else 'all'
    return [
        _ssh(args,
             common.prepare_script(args.dataset, args.data_dir),
             worker=worker)
    ]
  if c == 'start':
    common.check_workdir(args.workdir, args.sync_to)
    common.check_overrides(args.override)
    if not args.all_workers:
      return [
          _ssh(
              args,
              common.start_script(args.config, args.workdir, args.override,
                                  args.sync_to, args.sync_every_s))
      ]
    shared = args.workdir.startswith('/') or common.is_bucket(args.workdir)
    if not shared or args.sync_to:
      raise SystemExit('error: with --all_workers every worker must see one '
                       'workdir: give gs://BUCKET/PATH or an absolute path on '
                       'a file system they share (Filestore/NFS), and no '
                       '--sync_to')
    overrides = list(args.override) + [
        'distributed.initialize=True', 'distill.path=masked_vmap'
    ]
    return [
        _ssh(args,
             common.start_script(args.config, args.workdir, overrides, '',
                                 args.sync_every_s),
             worker='all')
    ]
  if c == 'status':
    return [_ssh(args, common.status_script(args.workdir))]
  if c == 'fetch':
    w, to = args.workdir, args.to
    export = _ssh(args, common.export_script(w))
    if common.is_bucket(w):
      copies = common.bucket_fetch(w, to)
      return [['mkdir', '-p', to]] + copies[:-1] + [export, copies[-1]]

    def scp(path, folder=False):
      return _gcloud(args, 'scp', f'{args.name}:{path}', to, '--worker=0',
                     *(['--recurse'] if folder else []))

    return [['mkdir', '-p', to]
           ] + [scp(common.remote_path(w, f), d) for f, d in common.FETCHED] + [
               scp(common.remote_path(common.log_path(w))), export,
               scp(common.remote_path(w, 'student.onnx'))
           ]
  if c == 'delete':
    return [_gcloud(args, 'delete', args.name, '--quiet')]
  raise AssertionError(c)


def parser():
  p = common.main_parser(__doc__)
  sub = p.add_subparsers(dest='command', metavar='COMMAND')

  def add(name, help_):
    s = sub.add_parser(name, help=help_)
    s.add_argument('--name', required=True, help='TPU VM name')
    s.add_argument('--zone', required=True, help='e.g. us-central2-b')
    s.add_argument('--project',
                   default='',
                   help='GCP project (default: '
                   "gcloud's)")
    return s

  s = add('create', 'create the TPU VM')
  s.add_argument('--accelerator', required=True, help='e.g. v4-8, v5litepod-8')
  s.add_argument('--version',
                 default='tpu-ubuntu2204-base',
                 help='TPU software version (runtime image)')
  s.add_argument('--spot', action='store_true', help='a Spot VM')
  add('install', 'ship the committed tree and install it with jax[tpu]')
  s = add('prepare-data', 'prepare a TFDS dataset (array_record) once')
  s.add_argument('--dataset',
                 default='cifar10',
                 help='cifar10, cifar100 or tfds:NAME')
  s.add_argument('--data_dir',
                 default='',
                 help='gs://BUCKET/tfds (prepared once for every VM) or a '
                 'folder on each worker; pass the same to start as '
                 '--override=data_dir=...')
  s = add('start', 'start a search, detached')
  common.add_search_args(s)
  s.add_argument('--all_workers',
                 action='store_true',
                 help='one process per worker of a multi-host pod slice, '
                 'joined by jax.distributed (the workdir must be '
                 'shared by all workers)')
  add('status', 'is it running; the log tail').add_argument('--workdir',
                                                            required=True)
  s = add(
      'fetch', 'copy results.json, the plots, tb/, the log and the chosen '
      'student (exported to ONNX) here')
  s.add_argument('--workdir', required=True)
  s.add_argument('--to', required=True, help='local directory')
  add('delete', 'delete the TPU VM')
  return p


def main(argv=None) -> None:
  args = common.parse(parser(), argv)
  common.run(commands(args), args.dry_run)


if __name__ == '__main__':
  main()
