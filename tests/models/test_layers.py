"""The compute-dtype policy of models/layers.py: float32 accumulation under bf16, float32 untouched."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import layers


def _product_eqns(fn, *args):
  """Every dot_general / conv_general_dilated equation in the jaxpr of fn(*args), nested ones
  (pjit, custom_jvp bodies) included."""
  found = []

  def walk(jaxpr):
    for e in jaxpr.eqns:
      if e.primitive.name in ("dot_general", "conv_general_dilated"):
        found.append(e)
      for v in e.params.values():
        inner = getattr(v, "jaxpr", v)  # ClosedJaxpr -> Jaxpr
        if hasattr(inner, "eqns"):
          walk(inner)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


def _products(fn, *args):
  """(primitive name, params) of every product in the jaxpr of fn(*args)."""
  return [(e.primitive.name, e.params) for e in _product_eqns(fn, *args)]


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



@pytest.mark.parametrize("lhs,rhs,strides,padding,kwargs", [
    ((2, 9, 7, 5), (3, 3, 5, 6), (1, 1), "SAME", {}),  # the head's 3x3
    ((2, 9, 7, 5), (1, 1, 5, 6), (1, 1), "VALID", {}),  # the head's 1x1
    ((2, 32, 48, 3), (16, 16, 3, 8), (16, 16), "VALID", {}),  # ViT patches
    ((1, 35, 33, 3), (16, 16, 3, 8), (16, 16), "VALID", {}),  # patches, ragged edge dropped
    ((2, 11, 10, 4), (3, 2, 4, 3), (2, 3), ((1, 2), (0, 1)), {}),  # strided, explicit padding
    ((2, 11, 10, 4), (3, 3, 4, 3), (1, 1), "SAME", {"rhs_dilation": (2, 2)}),  # falls back
])
def test_conv_as_matmuls_is_the_convolution(lhs, rhs, strides, padding, kwargs):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=lhs), jnp.float32)
  k = jnp.asarray(rng.normal(size=rhs), jnp.float32)
  dn = jax.lax.conv_dimension_numbers(lhs, rhs, ("NHWC", "HWIO", "NHWC"))
  ref = jax.lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=dn,
                                     precision="highest", **kwargs)
  out = layers.conv_as_matmuls(x, k, strides, padding, dimension_numbers=dn,
                               precision="highest", **kwargs)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
  convs = [n for n, _ in _products(
      lambda x, k: layers.conv_as_matmuls(x, k, strides, padding, dimension_numbers=dn, **kwargs),
      x, k) if n == "conv_general_dilated"]
  assert bool(convs) == bool(kwargs)  # matrix products only, except where it falls back


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_conv_impls_share_params_and_numbers(dtype):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 4)), jnp.float32)
  xla, mm = layers.Conv(6, (3, 3), dtype), layers.Conv(6, (3, 3), dtype, impl="matmul")
  params = xla.init(jax.random.key(0), x)
  assert jax.tree.structure(params) == jax.tree.structure(mm.init(jax.random.key(0), x))
  out = mm.apply(params, x)
  assert out.dtype == dtype
  np.testing.assert_allclose(np.asarray(out, np.float32),
                             np.asarray(xla.apply(params, x), np.float32),
                             rtol=0.02, atol=0.02 if dtype == jnp.bfloat16 else 1e-5)
  for _, p in _products(lambda p, x: mm.apply(p, x), params, x):
    assert p["preferred_element_type"] == (jnp.float32 if dtype == jnp.bfloat16 else None)
  with pytest.raises(ValueError, match="model.conv='cudnn'"):
    layers.Conv(6, (3, 3), dtype, impl="cudnn").init(jax.random.key(0), x)


@pytest.mark.parametrize("make,shape", [
    (lambda dt: layers.Dense(8, dt), (2, 5, 6)),
    (lambda dt: layers.Conv(8, (3, 3), dt, impl="matmul"), (2, 6, 6, 4)),
    (lambda dt: layers.Attention(2, dt), (2, 5, 8)),
])
def test_cast_kernels_gives_the_same_numbers(make, shape):
  x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
  module = make(jnp.bfloat16)
  params = module.init(jax.random.key(0), x)
  cast = layers.cast_kernels(params, jnp.bfloat16)
  kinds = {jax.tree_util.keystr(p): l.dtype for p, l in jax.tree_util.tree_leaves_with_path(cast)}
  assert any("kernel" in k for k in kinds)
  for key, dtype in kinds.items():
    assert dtype == (jnp.bfloat16 if "'kernel'" in key else jnp.float32), key
  np.testing.assert_array_equal(np.asarray(module.apply(cast, x), np.float32),
                                np.asarray(module.apply(params, x), np.float32))
  assert layers.cast_kernels(params, jnp.float32) is params


@pytest.mark.parametrize("masked", [False, True])
def test_attention_as_matmuls_is_flax_attention(masked):
  rng = np.random.default_rng(2)
  q, k, v = (jnp.asarray(rng.normal(size=(2, n, 3, 8)), jnp.float32) for n in (5, 7, 7))
  mask = jnp.asarray(rng.random((2, 1, 1, 7)) > 0.4) if masked else None
  if masked:
    mask = mask.at[1].set(False)  # a row with every key masked: uniform weights, as flax
  ref = flax.linen.dot_product_attention(q, k, v, mask=mask)
  np.testing.assert_allclose(layers.attention_as_matmuls(q, k, v, mask), ref, rtol=1e-5, atol=1e-6)
  bf16 = [t.astype(jnp.bfloat16) for t in (q, k, v)]
  bf = layers.attention_fn("matmul", jnp.bfloat16)(*bf16, mask)
  assert bf.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(bf, np.float32), ref, atol=0.05)


@pytest.mark.skipif(jax.devices()[0].platform != "gpu",
                    reason="the cudnn fused attention kernel exists on NVIDIA GPUs only")
def test_cudnn_attention_is_flax_attention_on_gpu():
  # The ViT's shapes: template + search tokens of lgtrack_b256, ViT-B heads.
  rng = np.random.default_rng(3)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 320, 12, 64)), jnp.float32) for _ in range(3))
  with jax.default_matmul_precision("highest"):
    ref = np.asarray(flax.linen.dot_product_attention(q, k, v))
  bf16 = [t.astype(jnp.bfloat16) for t in (q, k, v)]
  out = jax.jit(layers.attention_fn("cudnn", jnp.bfloat16))(*bf16)
  assert out.dtype == jnp.bfloat16 and out.shape == q.shape
  err = np.linalg.norm(np.asarray(out, np.float32) - ref) / np.linalg.norm(ref)
  assert err < 1e-2, err  # bf16 operands: between 1e-3 and 1e-2


@pytest.mark.parametrize("lhs,rhs,dims", [
    ((4, 6), (6, 8), (((1,), (0,)), ((), ()))),  # Dense
    ((2, 5, 6), (6, 3, 4), (((2,), (0,)), ((), ()))),  # DenseGeneral: q/k/v
    ((2, 5, 3, 4), (3, 4, 6), (((2, 3), (0, 1)), ((), ()))),  # DenseGeneral: out
    ((2, 5, 3, 4), (2, 7, 3, 4), (((3,), (3,)), ((0, 2), (0, 2)))),  # attention logits
    ((6, 4, 3), (3, 6), (((0, 2), (1, 0)), ((), ()))),  # contracting dims out of order
])
def test_bf16_products_have_bf16_backward_products(lhs, rhs, dims):
  """dot_acc32's gradients are JAX's own, and every product of the backward pass takes 16-bit
  operands (JAX's would take the float32 cotangent: a float32-speed product)."""
  rng = np.random.default_rng(3)
  l, r = (jnp.asarray(rng.normal(size=s), jnp.bfloat16) for s in (lhs, rhs))
  loss = lambda dot: lambda l, r: jnp.sum(dot(l, r).astype(jnp.float32) ** 2)
  ours = loss(lambda l, r: layers.dot_acc32(l, r, dims))
  ref = loss(lambda l, r: jax.lax.dot_general(
      l, r, dims, preferred_element_type=jnp.float32).astype(jnp.bfloat16))
  for got, want in zip(jax.grad(ours, (0, 1))(l, r), jax.grad(ref, (0, 1))(l, r)):
    assert got.dtype == want.dtype == jnp.bfloat16 and got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))

  def operand_dtypes(fn):
    return [tuple(v.aval.dtype for v in e.invars)
            for e in _product_eqns(jax.grad(fn, (0, 1)), l, r) if e.primitive.name == "dot_general"]

  bf16, f32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)
  assert set(operand_dtypes(ours)) == {(bf16, bf16)}
  assert (f32, bf16) in set(operand_dtypes(ref))  # what this fixes
