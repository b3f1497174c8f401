"""The train step: one jitted function (state, batch) -> (state, metrics)."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lgtrack_jax import losses
from lgtrack_jax.training.state import TrainState

MODEL_INPUTS = ("template", "search", "template_box", "text_ids", "text_mask", "mode")


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    config: ml_collections.ConfigDict) -> Callable:
  """Returns train_step(state, batch) -> (state, metrics); metrics are replicated scalars.

  batch: the pipeline's dict (see input_pipeline/pipeline.py), global arrays sharded on batch.
  Metrics include every loss term, grad/param global norms and the lr.
  """
  def loss_fn(params, batch):
    outputs = model.apply({"params": params}, **{k: batch[k] for k in MODEL_INPUTS})
    return losses.total_loss(outputs, batch, config.loss)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params), lr=schedule(state.step))
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


def jit_train_step(train_step: Callable, state_shardings, batch_sharding, mesh) -> Callable:
  """jit with explicit shardings; the old state's buffers are donated to the new one."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(train_step, in_shardings=(state_shardings, batch_sharding),
                 out_shardings=(state_shardings, replicated), donate_argnums=(0,))


def all_finite(metrics: dict) -> bool:
  return all(bool(jnp.isfinite(v)) for v in metrics.values())
