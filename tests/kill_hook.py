"""A `python -c` script that runs the job and SIGKILLs it at one named
event (tests of resuming after a kill)."""

# The job under a hook that SIGKILLs it at one named event: `save:KIND#N`
# inside the N-th checkpoint write into the directory KIND (teacher,
# search, embedding, final-stepS; the write has started, its temporary
# folder exists), `json:NAME#N` / `png:NAME#N` just before the N-th
# results.json / plot write, `log:PREFIX#N` at the N-th log line starting
# with PREFIX. Events are echoed to stderr as `event: ...`.
SCRIPT = """
import builtins, os, signal, sys
from absl import app
from esnac_jax import checkpoints, main
from esnac_jax.job import report

target = os.environ['KILL_AT']
seen = {}

def event(name):
  seen[name] = seen.get(name, 0) + 1
  label = f'{name}#{seen[name]}'
  sys.stderr.write(f'event: {label}\\n')
  sys.stderr.flush()
  if label == target:
    os.kill(os.getpid(), signal.SIGKILL)

save = checkpoints.save
def killing_save(mngr, step, meta, **trees):
  # The event fires at the first wait after mngr.save has returned: the
  # write is under way (orbax also waits inside save, before writing).
  kind = os.path.basename(str(mngr.directory))
  real_save, real_wait = mngr.save, mngr.wait_until_finished
  started = []
  def save_and_mark(*a, **k):
    out = real_save(*a, **k)
    started.append(True)
    return out
  def wait(*a, **k):
    if started:
      started.clear()
      event(f'save:{kind}')
    return real_wait(*a, **k)
  mngr.save, mngr.wait_until_finished = save_and_mark, wait
  try:
    save(mngr, step, meta, **trees)
  finally:
    del mngr.save, mngr.wait_until_finished
checkpoints.save = killing_save

write_json = report.write_json
def killing_write_json(path, doc):
  event('json:' + os.path.basename(path))
  write_json(path, doc)
report.write_json = killing_write_json
finish = report._finish
def killing_finish(fig, ax, path, *a):
  event('png:' + os.path.basename(path))
  finish(fig, ax, path, *a)
report._finish = killing_finish

real_print = builtins.print
log_prefix = target[4:].rpartition('#')[0] if target.startswith('log:') \
    else None
def killing_print(*args, **kwargs):
  line = ' '.join(map(str, args))
  if log_prefix and kwargs.get('file') is None and \
      line.startswith(log_prefix):
    event('log:' + log_prefix)
  real_print(*args, **kwargs)
builtins.print = killing_print
app.run(main.main, argv=sys.argv, flags_parser=main.parse_flags)
"""
