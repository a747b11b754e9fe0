"""The job's check of a teacher that learnt nothing."""

import numpy as np
import pytest

from esnac_jax.job.pipeline import check_teacher_learnt

LABELS = np.array([0, 0, 0, 1, 2])  # the most common class answers 0.6


def test_a_teacher_above_the_majority_class_share_passes():
  for given in (False, True):
    assert check_teacher_learnt(0.61, LABELS, '/w/teacher', given) == ''


@pytest.mark.parametrize('acc', [0.2, 0.4, 0.6])
def test_given_weights_no_better_than_the_majority_class_are_refused(acc):
  with pytest.raises(ValueError,
                     match=rf'scores {acc:.4f} validation accuracy, no '
                     r'better than always answering the most common class '
                     r'\(0\.6000\).*check the weights and the data'):
    check_teacher_learnt(acc, LABELS, '/w/teacher', given=True)


def test_a_teacher_trained_here_at_chance_gets_a_warning():
  warning = check_teacher_learnt(0.6, LABELS, '/w/teacher', given=False)
  assert warning.startswith('the teacher scores 0.6000 validation accuracy')
  assert 'after deleting /w/teacher' in warning


def test_labels_stored_as_floats_or_narrow_ints_count_the_same():
  for labels in (np.array([1., 1., 0.]), np.array([1, 1, 0], np.uint8)):
    with pytest.raises(ValueError, match=r'\(0\.6667\)'):
      check_teacher_learnt(0.5, labels, 't', given=True)
