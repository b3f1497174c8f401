import jax
import jax.numpy as jnp

from lgtrack_jax.ops.partition import constrain_batch


def _jaxpr(x):
  return str(jax.make_jaxpr(lambda y: constrain_batch(y * 2, dim=1))(x))


def test_noop_without_mesh_and_constraint_under_one():
  x = jnp.ones((2, 4, 3))
  assert "sharding_constraint" not in _jaxpr(x)
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  with jax.set_mesh(mesh):
    jaxpr = _jaxpr(x)
  assert "sharding_constraint" in jaxpr and "'data', 'fsdp'" in jaxpr
