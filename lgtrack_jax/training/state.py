"""Train state and its sharded creation (never materialised unsharded)."""

from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lgtrack_jax.models import lgtrack
from lgtrack_jax.training import sharding as sharding_lib


@flax.struct.dataclass
class TrainState:
  step: jnp.ndarray  # [] int32
  params: Any
  opt_state: Any


def init_fn(model: nn.Module, tx: optax.GradientTransformation,
            config: ml_collections.ConfigDict) -> Callable[[jax.Array], TrainState]:
  """rng -> freshly initialised TrainState (params from `model.init` on dummy inputs)."""
  def init(rng: jax.Array) -> TrainState:
    params = model.init(rng, **lgtrack.dummy_inputs(config))["params"]
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  return init


def state_shardings(abstract_state: TrainState, mesh: Mesh,
                    config: ml_collections.ConfigDict) -> TrainState:
  """Shardings for every leaf: params and optimizer moments by the regex rules, step replicated.

  Optimizer moments mirror the params' paths (e.g. '.../mu/blocks_0/attn/...'), so the same
  rules shard them like their params.
  """
  shardings = sharding_lib.tree_shardings(abstract_state, mesh, config)
  return shardings.replace(step=NamedSharding(mesh, P()))


def create_state(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh,
                 config: ml_collections.ConfigDict, rng: jax.Array):
  """(state, shardings): state built directly into its shardings by a jitted init."""
  init = init_fn(model, tx, config)
  abstract = jax.eval_shape(init, rng)
  shardings = state_shardings(abstract, mesh, config)
  return jax.jit(init, out_shardings=shardings)(rng), shardings
