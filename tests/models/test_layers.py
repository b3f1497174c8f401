"""The compute-dtype policy of models/layers.py: float32 accumulation under bf16, float32 untouched."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import layers


def _products(fn, *args):
  """Params of every dot_general / conv_general_dilated in the jaxpr of fn(*args), nested ones
  (pjit, custom_jvp bodies) included."""
  found = []

  def walk(jaxpr):
    for e in jaxpr.eqns:
      if e.primitive.name in ("dot_general", "conv_general_dilated"):
        found.append((e.primitive.name, e.params))
      for v in e.params.values():
        inner = getattr(v, "jaxpr", v)  # ClosedJaxpr -> Jaxpr
        if hasattr(inner, "eqns"):
          walk(inner)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


@pytest.mark.parametrize("make,shape", [
    (lambda dt: layers.Dense(8, dt), (2, 5, 6)),
    (lambda dt: layers.Conv(8, (3, 3), dt), (2, 6, 6, 4)),
    (lambda dt: layers.Attention(2, dt), (2, 5, 8)),
])
def test_bf16_products_accumulate_in_float32(make, shape):
  x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
  ref_module, bf_module = make(jnp.float32), make(jnp.bfloat16)
  params = ref_module.init(jax.random.key(0), x)
  ref = ref_module.apply(params, x)
  apply_bf16 = lambda p, x: bf_module.apply(p, x)
  out = apply_bf16(params, x)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=0.05, atol=0.05)
  products = _products(apply_bf16, params, x)
  assert products, "no matmul or convolution found"
  for name, p in products:
    assert p["preferred_element_type"] == jnp.float32, name


def test_float32_uses_flax_defaults():
  assert layers.dot_general_for(jnp.float32) is None
  assert layers.conv_for(jnp.float32) is None
  x = jnp.ones((1, 3, 4))
  dense = layers.Dense(4, jnp.float32)
  params = dense.init(jax.random.key(0), x)
  for _, p in _products(lambda p, x: dense.apply(p, x), params, x):
    assert p["preferred_element_type"] in (None, jnp.float32)

