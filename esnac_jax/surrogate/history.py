"""The history arrays the kernel takes: padding a growing history to size
buckets (so it compiles once per bucket) and checking arrays before any
compile, so a wrong shape or reward is named in one line.

feats: [N, L, F] per-layer features; fmask: [N, L] valid layers;
y: [N] rewards; ymask: [N] valid history points (padding is masked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from esnac_jax.surrogate.embedding import input_kernel

if TYPE_CHECKING:
  from esnac_jax.surrogate.kernel import SurrogateConfig

Params = Any


def bucket_size(n: int, step: int = 32) -> int:
  """History sizes are padded to multiples of `step` so a growing history
  recompiles once every `step` points, wasting at most `step - 1` rows."""
  return max(step, -(-max(n, 1) // step) * step)


def pad_history(feats, fmask, y, size: int):
  """Pads history arrays to `size` points; returns them and the point mask."""
  n = len(y)
  if n > size:
    raise ValueError(f'history of {n} points does not fit {size}')
  pad = size - n
  feats = np.concatenate(
      [feats, np.zeros((pad,) + feats.shape[1:], feats.dtype)])
  fmask = np.concatenate([fmask, np.zeros((pad,) + fmask.shape[1:], bool)])
  # Padding rows get one valid layer so their (unused) embedding is finite.
  fmask[n:, 0] = True
  y = np.concatenate([np.asarray(y, np.float32), np.zeros(pad, np.float32)])
  ymask = np.arange(size) < n
  return feats, fmask, y, ymask


def _concrete(x) -> np.ndarray | None:
  """x as NumPy when it holds values (not a tracer inside a user's jit)."""
  try:
    return np.asarray(x)
  except Exception:  # a tracer: its values are not known yet
    return None


def check_inputs(params: Params,
                 cfg: SurrogateConfig,
                 feats,
                 fmask,
                 y,
                 ymask,
                 new_feats=None,
                 new_fmask=None,
                 *,
                 kernels: bool = False,
                 per_kernel: bool = False,
                 per_kernel_history: bool | None = None) -> None:
  """Raises ValueError naming the argument for shapes that do not match,
  non-finite rewards, and rewards a fixed-scale GP cannot represent.

  kernels: ymask is [K, N] (K kernels); per_kernel: new_feats (and, unless
  per_kernel_history is False, the history) carry a leading K axis.
  """
  hist_k = per_kernel if per_kernel_history is None else per_kernel_history
  lead = 1 if hist_k else 0
  fshape, mshape = np.shape(feats), np.shape(fmask)
  yshape, ymshape = np.shape(y), np.shape(ymask)
  if len(fshape) != 3 + lead:
    raise ValueError(f'feats must be {"[K, " if lead else "["}N, L, F], got '
                     f'shape {fshape}')
  f_dim = input_kernel(params['lstm']).shape[-2]
  if fshape[-1] != f_dim:
    raise ValueError(f'feats has {fshape[-1]} features per layer but the '
                     f'embedding was initialised for {f_dim}')
  if mshape != fshape[:-1]:
    raise ValueError(f'fmask must be feats.shape[:-1] = {fshape[:-1]}, got '
                     f'{mshape}')
  if yshape != fshape[:-2]:
    raise ValueError(f'y must be [{"K, " if lead else ""}N] = {fshape[:-2]} '
                     f'(one reward per history sequence), got {yshape}')
  want_ym = yshape if (hist_k or not kernels) else None
  if want_ym is not None and ymshape != want_ym:
    raise ValueError(f'ymask must be {want_ym}, got {ymshape}')
  if want_ym is None and (len(ymshape) != 2 or ymshape[1] != yshape[0]):
    raise ValueError(f'ymask must be [K, N] with N = {yshape[0]}, got '
                     f'{ymshape}')
  if kernels:
    heads = jax.tree_util.tree_leaves(params['gp'])[0]
    k = ymshape[0]
    if np.ndim(heads) != 1 or np.shape(heads)[0] != k:
      raise ValueError(f'ymask has {k} kernel rows but params hold '
                       f'{np.shape(heads)[:1] or "no stacked"} GP heads')
  if new_feats is not None:
    nshape, nmshape = np.shape(new_feats), np.shape(new_fmask)
    n_lead = 1 if per_kernel else 0
    if len(nshape) != 3 + n_lead or nshape[-1] != f_dim:
      raise ValueError(f'new_feats must be {"[K, " if n_lead else "["}M, L, '
                       f'{f_dim}], got shape {nshape}')
    if nmshape != nshape[:-1]:
      raise ValueError(f'new_fmask must be new_feats.shape[:-1] = '
                       f'{nshape[:-1]}, got {nmshape}')
    if per_kernel and nshape[0] != ymshape[0]:
      raise ValueError(f'new_feats holds {nshape[0]} pools for '
                       f'{ymshape[0]} kernels')
  yv, mv = _concrete(y), _concrete(ymask)
  if yv is None or mv is None:
    return
  valid = np.broadcast_to(
      mv.astype(bool), np.broadcast_shapes(
          mv.shape, yv.shape)) if yv.shape != mv.shape else mv.astype(bool)
  vals = (np.broadcast_to(yv, valid.shape)
          if yv.shape != valid.shape else yv)[valid]
  if vals.size and not np.all(np.isfinite(vals)):
    raise ValueError('y holds NaN or infinite rewards at valid (ymask) '
                     'positions')
  if vals.size and not cfg.normalize_y:
    spread = float(np.max(np.abs(vals - cfg.mean)))
    reach = 100.0 * float(np.sqrt(cfg.signal))
    if spread > reach:
      raise ValueError(
          f'y lies up to {spread:.3g} from the GP mean {cfg.mean} but '
          f'normalize_y=False and signal={cfg.signal}: the prior cannot '
          'reach such rewards (every EI would be 0); rescale y or set '
          'normalize_y=True')
