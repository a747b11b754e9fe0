"""The job's warning for a teacher that learnt nothing."""

import numpy as np
import pytest

from esnac_jax.job.pipeline import teacher_warning

LABELS = np.array([0, 0, 0, 1, 2])  # the most common class answers 0.6


def test_a_teacher_above_the_majority_class_share_passes():
  for given in (False, True):
    assert teacher_warning(0.61, LABELS, '/w/teacher', given) == ''


@pytest.mark.parametrize('acc', [0.2, 0.4, 0.6])
def test_given_weights_no_better_than_the_majority_class_are_named(acc):
  warning = teacher_warning(acc, LABELS, '/w/teacher', given=True)
  assert warning == (f'the teacher scores {acc:.4f} validation accuracy, no '
                     'better than always answering the most common class '
                     '(0.6000), so rewards relative to it mean little; check '
                     'the weights and the data')


def test_a_teacher_trained_here_at_chance_is_told_to_train_longer():
  warning = teacher_warning(0.6, LABELS, '/w/teacher', given=False)
  assert warning.startswith('the teacher scores 0.6000 validation accuracy')
  assert 'config.teacher.train.epochs) after deleting /w/teacher' in warning


def test_labels_stored_as_floats_or_narrow_ints_count_the_same():
  for labels in (np.array([1., 1., 0.]), np.array([1, 1, 0], np.uint8)):
    assert '(0.6667)' in teacher_warning(0.5, labels, 't', given=True)
