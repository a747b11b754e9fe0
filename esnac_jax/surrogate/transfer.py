"""Saving a fitted embedding and reusing it for another teacher (transfer).

The BiLSTM reads per-layer feature sequences with a mask, so an embedding
fitted on one teacher's children reads any other teacher's children of the
same feature kind (the sequences only differ in length). Saved as an orbax
checkpoint: the LSTM parameters plus a JSON description that is checked
before reuse.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from esnac_jax import checkpoints, paths
from esnac_jax.surrogate.kernel import SurrogateConfig, init

FORMAT = 'esnac_jax.embedding/1'


class EmbeddingError(ValueError):
  """A saved embedding is missing, unreadable or does not fit the config."""


def save_embedding(path: str, lstm: Any, meta: dict[str, Any]) -> None:
  """Writes the LSTM parameters and `meta` (hidden, num_layers, features,
  feature_dim, and whatever describes where it came from) to `path`."""
  if lstm is None:
    raise EmbeddingError(f'nothing to save to {path}: no surrogate has been '
                         'fitted yet')
  meta = dict(meta, format=FORMAT)
  with checkpoints.manager(path, max_to_keep=1) as mngr:
    step = (mngr.latest_step() or 0) + 1
    checkpoints.save(mngr, step, meta, lstm=jax.device_get(lstm))


def saved_meta(path: str) -> dict[str, Any] | None:
  """The meta of the embedding saved at `path`; None when there is none or
  it is unreadable (a save then replaces it)."""
  if not paths.path(path).is_dir():
    return None
  try:
    with checkpoints.manager(path, create=False) as mngr:
      step = mngr.latest_step()
      return None if step is None else checkpoints.restore_meta(mngr, step)
  except Exception:  # orbax raises many kinds for damaged files
    return None


def load_embedding(path: str, cfg: SurrogateConfig,
                   features: str) -> tuple[Any, dict[str, Any]]:
  """(LSTM parameters, meta) saved at `path`, checked against the surrogate
  config and feature kind that will use them."""
  if not paths.path(path).is_dir():
    raise EmbeddingError(f'no saved embedding at {path} (a search with the '
                         'esnac searcher writes one to WORKDIR/embedding)')
  try:
    with checkpoints.manager(path) as mngr:
      step = mngr.latest_step()
      if step is None:
        raise EmbeddingError(f'{path} holds no finished embedding save')
      meta = checkpoints.restore_meta(mngr, step)
      _check(meta, cfg, features, path)
      shapes = jax.eval_shape(
          lambda: init(jax.random.key(0), cfg, meta['feature_dim'])['lstm'])
      target = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                      shapes)
      lstm = checkpoints.restore_tree(mngr, step, 'lstm', target)
  except EmbeddingError:
    raise
  except Exception as e:  # orbax raises many kinds for damaged files
    raise EmbeddingError(f'the embedding at {path} is unreadable '
                         f'({type(e).__name__}: {str(e)[:200]})') from e
  return lstm, meta


def _check(meta: dict, cfg: SurrogateConfig, features: str, path: str) -> None:
  if meta.get('format') != FORMAT:
    raise EmbeddingError(f'{path} is not an esnac_jax embedding (format '
                         f'{meta.get("format")!r})')
  want = {
      'hidden': cfg.hidden,
      'num_layers': cfg.num_layers,
      'features': features,
      'lstm_impl': cfg.lstm_impl
  }
  # Embeddings saved before lstm_impl existed are the custom layout.
  saved = dict(meta, lstm_impl=meta.get('lstm_impl', 'custom'))
  diff = {k: (saved.get(k), v) for k, v in want.items() if saved.get(k) != v}
  if diff:
    shown = ', '.join(
        f'{k}: saved {a!r}, config {b!r}' for k, (a, b) in diff.items())
    raise EmbeddingError(f'the embedding at {path} does not fit this search '
                         f'({shown}); set the config to the saved values')
