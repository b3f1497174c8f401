"""Activation sharding hints that are no-ops outside a mesh context.

The model calls them on its token tensors; under `jax.set_mesh(mesh)` (train.py) they pin the batch
dimension to the mesh's batch axes, so XLA never re-shards activations along other dimensions.
Single-device evaluation runs without a mesh and is untouched.
"""

from __future__ import annotations

import jax
from jax.sharding import PartitionSpec as P

BATCH_AXES = ("data", "fsdp")


def constrain_batch(x: jax.Array, dim: int = 0) -> jax.Array:
  """Shards dimension `dim` of x over ('data', 'fsdp') when such a mesh is set; else returns x."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names):
    return x
  spec = [None] * x.ndim
  spec[dim] = BATCH_AXES
  return jax.lax.with_sharding_constraint(x, P(*spec))
