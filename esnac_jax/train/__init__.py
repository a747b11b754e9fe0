"""Teacher training, distillation of candidates, final training."""

from esnac_jax.train.distill import distill_candidates, final_train
from esnac_jax.train.losses import LossConfig, loss_fn
from esnac_jax.train.loop import TrainConfig, Trained, check_classes, accuracy_on_test, train_many
from esnac_jax.train.optim import OptimConfig, make_optimizer
from esnac_jax.train.teacher import (CheckpointError, get_teacher_variables,
                                     restore_teacher, save_teacher)

__all__ = [
    'distill_candidates', 'final_train', 'LossConfig', 'loss_fn', 'TrainConfig',
    'Trained', 'check_classes', 'accuracy_on_test', 'train_many', 'OptimConfig',
    'make_optimizer', 'CheckpointError', 'get_teacher_variables',
    'restore_teacher', 'save_teacher'
]
