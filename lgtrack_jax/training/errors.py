"""Errors that stop training with a message for the user (train.py prints each as one line)."""

from __future__ import annotations


class TrainingError(Exception):
  """A stop the user acts on: `train.py` reports it as `train.py: error: ...`, no traceback."""


class ConfigError(TrainingError, ValueError):
  """The config does not fit the devices, or not the run already in the workdir."""


class NonFiniteError(TrainingError, FloatingPointError):
  """Loss, gradients or params became NaN or infinite; nothing non-finite was saved."""
