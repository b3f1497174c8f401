"""Everything a train step needs, built once: the model, optimizer, sharded state and jitted step.

Shared by `trainer.train`, the benchmarks and the tests, so they all train the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections
import optax
from jax.sharding import Mesh

from lgtrack_jax.models import lgtrack
from lgtrack_jax.training import optim, sharding, state as state_lib, step as step_lib


@dataclasses.dataclass(frozen=True)
class Training:
  """model; tx and its lr `schedule`; the fresh `state` laid out in `shardings` (never
  materialised unsharded); `step(state, batch) -> (state, metrics)` jitted with explicit
  shardings and the old state donated."""

  model: nn.Module
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  state: state_lib.TrainState
  shardings: Any
  step: Callable


def build_training(config: ml_collections.ConfigDict, mesh: Mesh, rng: jax.Array) -> Training:
  model = lgtrack.build_model(config)
  shapes = jax.eval_shape(model.init, jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  tx, schedule = optim.make_optimizer(config, shapes)
  state, shardings = state_lib.create_state(model, tx, mesh, config, rng)
  step = step_lib.jit_train_step(step_lib.make_train_step(model, tx, schedule, config),
                                 shardings, sharding.batch_sharding(mesh), mesh)
  return Training(model, tx, schedule, state, shardings, step)
