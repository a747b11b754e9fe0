"""Shared fixtures: small teachers that keep CPU tests fast."""

import os

import pytest

from esnac_jax.arch import get_teacher

TEACHER_NAMES = ('vgg19', 'resnet18', 'resnet34', 'shufflenet', 'mobilenetv2')


def tiny_teacher(name: str, num_classes: int = 10):
  """A narrow teacher at the smallest input its downsampling allows."""
  size = 32 if name == 'vgg19' else 8
  return get_teacher(name, num_classes=num_classes, width=0.125,
                     input_size=size)


@pytest.fixture(params=TEACHER_NAMES)
def teacher_name(request):
  return request.param


def env_int(name: str, default: int) -> int:
  return int(os.environ.get(name, default))
