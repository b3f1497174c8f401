"""The train step: one jitted function (state, batch) -> (state, metrics)."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lgtrack_jax import losses
from lgtrack_jax.ops.partition import constrain_batch
from lgtrack_jax.training.state import TrainState

MODEL_INPUTS = ("template", "search", "template_box", "text_ids", "text_mask", "mode")
# The metric that says the step's loss, gradients and new params are all finite ([] bool).
FINITE = "all_finite"


def make_loss_fn(model: nn.Module, config: ml_collections.ConfigDict) -> Callable:
  """loss_fn(params, batch) -> (total loss [], metrics dict of scalars)."""

  def loss_fn(params, batch):
    outputs = model.apply({"params": params}, **{k: batch[k] for k in MODEL_INPUTS})
    return losses.total_loss(outputs, batch, config.loss)

  return loss_fn


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    config: ml_collections.ConfigDict) -> Callable:
  """Returns train_step(state, batch) -> (state, metrics); metrics are replicated scalars.

  batch: the pipeline's dict (see input_pipeline/pipeline.py), global arrays sharded on batch.
  Metrics include every loss term, grad/param global norms, the lr, and `all_finite` ([] bool:
  every loss term, the gradients and the new params are finite; see `finite`).
  """
  accum = config.train.grad_accum
  loss_fn = make_loss_fn(model, config)
  grad_fn = jax.grad(loss_fn, has_aux=True)

  def accumulated_grads(params, batch):
    """Mean gradient over `accum` micro-batches; micro-batch a = rows a, a + A, a + 2A, ...

    Interleaving (reshape to [B/A, A] then swap) keeps every micro-batch spread over all the
    devices that hold the batch, instead of one contiguous block living on a few of them.
    """
    micro = jax.tree.map(lambda x: constrain_batch(
        jnp.swapaxes(x.reshape(x.shape[0] // accum, accum, *x.shape[1:]), 0, 1), dim=1), batch)

    def body(carry, mb):
      grads, metrics = grad_fn(params, mb)
      return jax.tree.map(jnp.add, carry, (grads, metrics)), None

    shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    (grads, metrics), _ = jax.lax.scan(body, zeros, micro)
    return jax.tree.map(lambda x: x / accum, (grads, metrics))

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    if accum == 1:
      grads, metrics = grad_fn(state.params, batch)
    else:
      grads, metrics = accumulated_grads(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params), lr=schedule(state.step))
    metrics[FINITE] = finite(metrics)
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


def jit_train_step(train_step: Callable, state_shardings, batch_sharding, mesh) -> Callable:
  """jit with explicit shardings; the old state's buffers are donated to the new one."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(train_step, in_shardings=(state_shardings, batch_sharding),
                 out_shardings=(state_shardings, replicated), donate_argnums=(0,))


def finite(metrics: dict) -> jax.Array:
  """[] bool: every scalar of `metrics` is finite.

  Costs a few scalar ops: the global norms of the gradients and of the new params are already
  among the metrics, and a norm is finite exactly when every element is (a NaN or inf anywhere
  makes it NaN or inf; only a finite norm above ~1e19 would overflow, a run diverged anyway).
  The new optimizer moments follow from finite gradients and params.
  """
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
