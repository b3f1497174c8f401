"""Everything a train step needs, built once: the model, optimizer, sharded state and jitted step.

Shared by `trainer.train`, the benchmarks and the tests, so they all train the same way.

Candidate elimination (`model.ce`) warms up as in OSTrack: no token is dropped before
`ce.warmup_start` (a fraction of train.steps), then the keep ratio falls in `ce.warmup_stages`
equal stages to `ce.keep_ratio`, reached at `ce.warmup_end`. The number of tokens kept is a shape,
so each stage is its own jitted step (the same parameters and state; each compiles on first use).
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
  # ((first step, keep ratio, jitted step), ...) ascending: the candidate-elimination stages.
  stages: tuple = ()

  def step_at(self, step: int) -> Callable:
    """The jitted step for train step `step` (0-based): its candidate-elimination stage's."""
    for first, _, fn in reversed(self.stages):
      if step >= first:
        return fn
    return self.step


def ce_stages(config: ml_collections.ConfigDict) -> tuple[tuple[int, float], ...]:
  """((first step, keep ratio), ...) of the candidate-elimination warm-up; ((0, keep_ratio),)
  when there is none (CE off, or warmup_end == 0)."""
  ce, steps = config.model.ce, config.train.steps
  if not ce.layers or ce.warmup_end <= 0:
    return ((0, ce.keep_ratio),)
  if not 0 <= ce.warmup_start <= ce.warmup_end <= 1 or ce.warmup_stages < 1:
    raise ValueError(f"model.ce.warmup_start={ce.warmup_start}, warmup_end={ce.warmup_end}, "
                     f"warmup_stages={ce.warmup_stages}: need 0 <= start <= end <= 1, stages >= 1")
  start, end, n = int(ce.warmup_start * steps), int(ce.warmup_end * steps), ce.warmup_stages
  stages = [(0, 1.0)] + [(start + (end - start) * i // n,
                          ce.keep_ratio if i == n else 1 - (1 - ce.keep_ratio) * i / n)
                         for i in range(1, n + 1)]
  # A stage that starts where the next one does never runs.
  return tuple(st for st, nxt in zip(stages, stages[1:] + [(steps + 1, 0)]) if st[0] < nxt[0])


def build_training(config: ml_collections.ConfigDict, mesh: Mesh, rng: jax.Array) -> Training:
  model = lgtrack.build_model(config)
  shapes = lgtrack.param_shapes(config)
  tx, schedule = optim.make_optimizer(config, shapes)
  state, shardings = state_lib.create_state(model, tx, mesh, config, rng)

  def jitted(stage_model):
    return step_lib.jit_train_step(step_lib.make_train_step(stage_model, tx, schedule, config),
                                   shardings, sharding.batch_sharding(mesh), mesh)

  step = jitted(model)
  stages = []
  for first, ratio in ce_stages(config):
    if ratio == config.model.ce.keep_ratio:
      stages.append((first, ratio, step))
    else:
      stage_config = config.copy_and_resolve_references()
      stage_config.model.ce.keep_ratio = ratio
      stages.append((first, ratio, jitted(lgtrack.build_model(stage_config))))
  return Training(model, tx, schedule, state, shardings, step, tuple(stages))


def unsharded_step(training: Training, config: ml_collections.ConfigDict) -> Callable:
  """`training`'s step jitted without the mesh's shardings (the batch constraints are no-ops
  without a mesh): the same function, to lower for another device. Lowered for the host CPU, it
  gives the step's FLOPs where the accelerator's backend cannot count them (`flops.count_flops`)."""
  return jax.jit(step_lib.make_train_step(training.model, training.tx, training.schedule, config))
