"""The job's refusal of a teacher that learnt nothing."""

import numpy as np
import pytest

from esnac_jax.job.pipeline import check_teacher_learnt


def test_a_teacher_above_the_majority_class_share_passes():
  labels = np.array([0, 0, 0, 1, 2])  # the majority answers 0.6
  check_teacher_learnt(0.61, labels, '/w/teacher')


@pytest.mark.parametrize('acc', [0.0, 0.4, 0.6])
def test_a_teacher_no_better_than_the_majority_class_is_refused(acc):
  labels = np.array([0, 0, 0, 1, 2])
  with pytest.raises(ValueError,
                     match=rf'scores {acc:.4f} validation accuracy, no '
                     r'better than always answering the most common class '
                     r'\(0\.6000\).*after deleting /w/teacher'):
    check_teacher_learnt(acc, labels, '/w/teacher')


def test_labels_stored_as_floats_or_narrow_ints_count_the_same():
  for labels in (np.array([1., 1., 0.]), np.array([1, 1, 0], np.uint8)):
    with pytest.raises(ValueError, match=r'\(0\.6667\)'):
      check_teacher_learnt(0.5, labels, 't')
