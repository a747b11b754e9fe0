"""Take a finished search's student away: its Arch, Flax module, trained
variables and input preprocessing, from the workdir alone.

  from esnac_jax import load_student
  student = load_student('/tmp/esnac_digits')     # the chosen finalist
  logits = student.apply(raw_images)              # [N, H, W, C] as the
                                                  # dataset gives them
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from esnac_jax import checkpoints, paths
from esnac_jax.arch import Arch
from esnac_jax.models import make_model
from esnac_jax.models.weights import restore_target


@dataclasses.dataclass(frozen=True)
class Student:
  """A trained student: `apply(images)` takes raw images (uint8 or float,
  NHWC, in the dataset's own units) and returns logits."""
  arch: Arch
  variables: dict
  mean: np.ndarray  # per channel, raw image units
  std: np.ndarray
  index: int  # the candidate's index in results.json
  val_acc: float
  test_acc: float | None
  resize: bool = False  # the job resized the dataset's images (image_size)

  @property
  def model(self) -> Any:
    """The Flax module (`esnac_jax.models.make_model(arch)`)."""
    return make_model(self.arch)

  def preprocess(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Model inputs of raw images: a batch [N, H, W, C], one image, or
    (when the job resized its data) a list of images of any sizes."""
    if isinstance(images, (list, tuple)):
      return np.concatenate([self.preprocess(x) for x in images])
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[None]
    size, _, channels = self.arch.input_shape
    if self.resize and images.ndim == 4 and images.shape[3] == channels:
      from esnac_jax.data.arrays import resize_images
      images = resize_images(images, size)
    if tuple(images.shape[1:]) != self.arch.input_shape:
      raise ValueError(f'the student takes images of shape '
                       f'{self.arch.input_shape} (H, W, C), got '
                       f'{tuple(images.shape[1:])}')
    return ((images.astype(np.float32) - self.mean) / self.std).astype(
        np.float32)

  def apply(self, images: np.ndarray) -> jax.Array:
    """Logits [N, classes] of raw images [N, H, W, C] (or one [H, W, C])."""
    return self._forward(self.variables, jnp.asarray(self.preprocess(images)))

  @functools.cached_property
  def _forward(self) -> Any:
    model = self.model
    return jax.jit(lambda v, x: model.apply(v, x, train=False))


def load_student(workdir: str,
                 rank: int | None = None,
                 index: int | None = None) -> Student:
  """The finalist of `workdir` chosen on validation, the one at `rank` of
  the final stage (0 = the best search reward), or candidate `index` of
  results.json (trained fully when among final.top_n or final.indices)."""
  path = paths.join(workdir, 'results.json')
  try:
    doc = json.loads(paths.path(path).read_text())
  except FileNotFoundError:
    raise FileNotFoundError(f'no results.json in {workdir}: not a finished '
                            'esnac_jax workdir') from None
  except ValueError as e:
    raise ValueError(f'{path} is not readable JSON ({e})') from None
  final = doc.get('final')
  if not final or not final.get('candidates'):
    raise ValueError(f'{workdir} has no fully trained student yet: rerun '
                     'the job to finish its final stage (final.top_n >= 1)')
  data = doc.get('data')
  if not data:
    raise ValueError(f'{path} records no input normalisation (written by '
                     'an older version); rerun the job in that workdir')
  entries = {e['rank']: e for e in final['candidates']}
  if index is not None:
    if rank is not None:
      raise ValueError('give a rank or a candidate index, not both')
    ranks = [e['rank'] for e in entries.values() if e['index'] == index]
    if not ranks:
      trained = sorted(e['index'] for e in entries.values())
      raise ValueError(f'candidate {index} of {workdir} is not fully trained '
                       f'(trained: {trained}); rerun the job with '
                       f'--config.final.indices={index} to train it')
    rank = ranks[0]
  if rank is None:
    rank = final['chosen']['rank']
  if rank not in entries:
    raise ValueError(f'no finalist at rank {rank} in {workdir}; ranks: '
                     f'{sorted(entries)}')
  entry = entries[rank]
  arch = Arch.from_dict(doc['candidates'][entry['index']]['arch'])
  directory = paths.join(workdir, f'final-step{doc["steps_done"]}')
  target = restore_target(arch)
  try:
    with checkpoints.manager(directory, create=False) as mngr:
      variables = checkpoints.restore_tree(mngr, rank, 'variables', target)
  except Exception as e:  # orbax raises many kinds for damaged files
    raise ValueError(
        f'the student checkpoint {directory}/{rank} is '
        f'unreadable ({type(e).__name__}: {str(e)[:160]})') from None
  chosen = final.get('chosen') or {}
  test_acc = chosen.get('test_acc') if chosen.get('rank') == rank else \
      entry.get('test_acc')  # a requested candidate's (final.indices)
  return Student(arch, variables, np.asarray(data['mean'], np.float32),
                 np.asarray(data['std'], np.float32), entry['index'],
                 entry['val_acc'], test_acc, bool(data.get('image_size')))
