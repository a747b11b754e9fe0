"""esnac_jax: ESNAC neural architecture compression in JAX/Flax."""

__version__ = '0.1.0'


def load_student(workdir: str,
                 rank: int | None = None,
                 index: int | None = None):
  """The trained student of a finished workdir (see esnac_jax.student)."""
  from esnac_jax.student import load_student as load
  return load(workdir, rank, index)
