"""The whole job of `esnac_jax.main`: teacher, search, final stage, report.

Workdir layout:
  teacher/          orbax checkpoint of the teacher (+ its metrics)
  search/           orbax search state, one step per finished search step
  final-stepN/      final training of the top candidates after N steps
  embedding/        the fitted LSTM (esnac searcher), for transfer
  results.json      everything a person or a script needs (README schema)
  pareto.png, reward.png, tb/ (TensorBoard)
"""

from __future__ import annotations

import json
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from esnac_jax import distributed, paths
from esnac_jax.provenance import provenance
from esnac_jax.search import pareto
from esnac_jax.job import from_config, validate
from esnac_jax.job.checkpoint import SearchCheckpointer
from esnac_jax.job.evaluate import Evaluator
from esnac_jax.job.final import earlier_finalists, final_stage
from esnac_jax.job.loop import SearchOutcome, kept_indices, run_search
from esnac_jax.job import report
from esnac_jax.job.timing import CompileClock, breakdown
from esnac_jax.models.inherit import inherit
from esnac_jax.surrogate.transfer import FORMAT as EMBEDDING_FORMAT
from esnac_jax.surrogate.transfer import save_embedding, saved_meta
from esnac_jax.train import get_teacher_variables

# Below this many validation images the log warns that accuracies are coarse.
SMALL_VAL = 100


def run(config: ml_collections.ConfigDict,
        workdir: str,
        log: Callable[[str], None] = print,
        plan: validate.Plan | None = None) -> dict:
  """Runs or resumes the job described by `config` in `workdir`; returns
  the results.json document. `plan`: the config already checked
  (validate.check)."""
  with CompileClock() as clock:
    return _run(config, workdir, log, plan, clock)


def _run(config: ml_collections.ConfigDict, workdir: str, log: Callable[[str],
                                                                        None],
         plan: validate.Plan | None, clock: CompileClock) -> dict:
  t_start = time.perf_counter()
  if plan is None:  # everything is checked before any expensive work
    plan = validate.check(config, workdir)
  teacher, searcher, path = plan.teacher, plan.searcher, plan.path
  config_dict = plan.config_dict
  workdir = paths.join(workdir)  # absolute, or a gs:// URI as given
  paths.path(workdir).mkdir(parents=True, exist_ok=True)

  # Every process holds the whole dataset; in a multi-process run each
  # feeds its share of every minibatch (train.masked.distill_masked).
  ds = from_config.config_dataset(config)
  primary = distributed.is_primary()
  log(f'data: {ds.name}, {len(ds.train)} train / {len(ds.val)} val / '
      f'{len(ds.test)} test images')
  if len(ds.val) < SMALL_VAL:
    log(f'warning: the validation split has {len(ds.val)} images, so every '
        f'accuracy the search ranks by moves in steps of '
        f'{1 / len(ds.val):.4f}; {SMALL_VAL} or more rank more finely')
  log(f'teacher: {teacher.name} width {config.teacher.width}, '
      f'{teacher.num_params:,} params, {teacher.flops / 1e6:.1f} MFLOPs')
  t_teacher = time.perf_counter()
  teacher_vars, teacher_metrics = get_teacher_variables(
      teacher,
      ds,
      plan.teacher_train,
      workdir,
      config.seed,
      log,
      weights=plan.teacher_weights,
      weights_from=from_config.teacher_weights_path(config))
  teacher_s = time.perf_counter() - t_teacher
  if jax.process_count() > 1:  # process 0's teacher, to the last bit
    teacher_vars = distributed.broadcast_tree(teacher_vars)
    teacher_metrics = json.loads(
        distributed.broadcast_text(json.dumps(teacher_metrics)))

  if not teacher_metrics['val_acc'] > 0:
    raise ValueError(
        f'the teacher scores 0 validation accuracy, so the reward (relative '
        f'to it) is undefined; train it longer (config.teacher.train) after '
        f'deleting {paths.join(workdir, "teacher")}, or check the data')
  warning = teacher_warning(teacher_metrics['val_acc'], ds.val.labels,
                            paths.join(workdir, 'teacher'),
                            bool(teacher_metrics.get('weights_from')))
  if warning:
    log(f'warning: {warning}')
  log(f'candidates train on the {path} path')
  evaluate = Evaluator(teacher, teacher_vars, teacher_metrics['val_acc'], ds,
                       plan.distill, plan.constraints, config.distill.select,
                       config.distill.bn_stats, path,
                       config.distill.get('stop_hopeless', False))
  steps = config.search.steps
  writers = []  # the TensorBoard writer, made when a step is first written
  results_path = paths.join(workdir, 'results.json')
  data = report.data_section(ds, config.get('image_size', 0))
  made_by = provenance()

  def write_outputs(out: SearchOutcome, step: int, final=None) -> dict:
    recs = out.searcher.records
    doc = report.results_dict(config_dict, teacher, teacher_metrics, recs, step,
                              out.timing, final, data, made_by)
    if not primary or _same_json(results_path, doc):
      return doc  # a rerun of a finished run writes nothing new
    # The plots first: results.json, written last, marks them current.
    report.plot_pareto(paths.join(workdir, 'pareto.png'), teacher.num_params,
                       teacher_metrics['val_acc'], recs)
    report.plot_reward(paths.join(workdir, 'reward.png'), recs)
    report.write_json(results_path, doc)
    return doc

  def on_step(out: SearchOutcome, step: int) -> None:
    new = [r for r in out.searcher.records if r.step == step]
    if not primary:
      return
    if not writers:  # each process (a resumed run too) says what it is
      writers.append(report.MetricWriter(paths.join(workdir, 'tb')))
      writers[0].write_text('provenance', json.dumps(made_by, indent=1))
    writers[0].write_scalars(
        step, {
            'search/best_reward': out.searcher.best(1)[0].reward,
            'search/step_best_reward': max(r.reward for r in new),
            'search/step_mean_reward': sum(r.reward for r in new) / len(new),
            'search/step_mean_val_acc': sum(r.val_acc for r in new) / len(new),
            'search/evaluations': len(out.searcher.records),
            'search/hypervolume': _hypervolume(out.searcher),
            'time/propose_s': out.timing['propose_s'],
            'time/train_s': out.timing['train_s']
        })
    write_outputs(out, step)

  ckpt = SearchCheckpointer(paths.join(workdir, 'search'))
  try:
    out = run_search(searcher,
                     lambda archs, seed, log: evaluate(
                         archs, seed, log, history=searcher.records),
                     ckpt,
                     steps=steps,
                     per_step=config.search.candidates_per_step,
                     seed=config.seed,
                     keep=max(config.final.top_n, 1),
                     config=config_dict,
                     on_step=on_step,
                     log=log,
                     agree=(lambda a: distributed.agree(a, log))
                     if jax.process_count() > 1 else None,
                     compile_seconds=clock.seconds)
  finally:
    ckpt.close()
  recs = out.searcher.records
  _save_embedding(out.searcher, config, teacher, workdir, log)
  kept = kept_indices(recs, config.final.top_n,
                      out.searcher.constraints.pareto_axis)
  t_final = time.perf_counter()

  def initial(index: int) -> dict:  # a requested candidate's start
    return inherit(teacher, recs[index].arch, teacher_vars,
                   config.distill.select, config.distill.bn_stats)

  final = final_stage(recs,
                      kept,
                      out.weights,
                      teacher,
                      teacher_vars,
                      teacher_metrics,
                      ds,
                      plan.final,
                      config.seed,
                      paths.join(workdir, f'final-step{steps}'),
                      log,
                      requested=from_config.final_indices(config),
                      initial=initial,
                      score=plan.constraints.reward,
                      earlier=earlier_finalists(workdir, steps, plan.final,
                                                log))
  final_s = time.perf_counter() - t_final
  doc = write_outputs(out, steps, final)
  for writer in writers:
    writer.close()
  best = doc['best']
  log(f'done in {time.perf_counter() - t_start:.0f}s: {len(recs)} '
      f'candidates; best search reward {best["reward"]:.4f} (candidate '
      f'{best["index"]}, {best["times"]:.1f}x smaller, val acc '
      f'{best["val_acc"]:.4f}); results in {results_path}')
  front = doc['pareto']['params']
  log(f'Pareto front (params vs val acc), {len(front)} candidates: ' +
      ', '.join(f'{c["index"]} ({c["times"]:.1f}x, {c["val_acc"]:.4f})'
                for c in front[:8]) + (' ...' if len(front) > 8 else '') +
      '; train others fully with --config.final.indices=I,J')
  log(breakdown(dict(out.timing, teacher_s=teacher_s, final_s=final_s)))
  return doc


def teacher_warning(val_acc: float, val_labels: np.ndarray, teacher_dir: str,
                    given: bool) -> str:
  """A warning for a teacher no better than always answering the validation
  split's most common class, whose accuracy makes every reward (relative to
  it) noise; '' for a teacher that has learnt. Not a refusal: a dry run on
  random weights or on data nothing can learn (TFDS's mock data) runs."""
  labels = np.asarray(val_labels).astype(np.int64)
  majority = np.bincount(labels).max() / len(labels) if len(labels) else 0.0
  if val_acc > majority:
    return ''
  fix = ('check the weights and the data' if given else
         f'train it longer (config.teacher.train.epochs) after deleting '
         f'{teacher_dir}, or check the data')
  return (f'the teacher scores {val_acc:.4f} validation accuracy, no better '
          f'than always answering the most common class ({majority:.4f}), '
          f'so rewards relative to it mean little; {fix}')


def _save_embedding(searcher, config: ml_collections.ConfigDict, teacher,
                    workdir: str, log: Callable[[str], None]) -> None:
  """WORKDIR/embedding: the fitted LSTM, for --config.search.surrogate.
  init_from in a search of another teacher."""
  lstm = getattr(searcher, 'fitted_embedding', lambda: None)()
  if lstm is None:
    return
  path = paths.join(workdir, 'embedding')
  meta = from_config.embedding_meta(config, teacher, len(searcher.records))
  if saved_meta(path) == dict(meta, format=EMBEDDING_FORMAT):
    return  # a rerun of a finished search: the same embedding is there
  save_embedding(path, lstm, meta)
  log(f'saved the fitted embedding to {path} (reuse it with '
      f'--config.search.surrogate.init_from={path})')


def _same_json(path: str, doc: dict) -> bool:
  """Whether `path` already holds `doc`."""
  try:
    return json.loads(paths.path(path).read_text()) == \
        json.loads(json.dumps(doc))
  except (OSError, ValueError):
    return False


def _hypervolume(searcher) -> float:
  """The area the candidates' accuracy-size front dominates, sizes as
  fractions of the teacher's (by the pareto objective's axis, else
  parameters)."""
  axis = searcher.constraints.pareto_axis or 'params'
  ref = getattr(searcher.teacher, 'num_params' if axis == 'params' else 'flops')
  recs = searcher.records
  return pareto.hypervolume([getattr(r, axis) / ref for r in recs],
                            [r.val_acc for r in recs])
