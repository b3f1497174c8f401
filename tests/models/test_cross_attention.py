"""CrossAttention, the clear form: flax's multi-head attention, with a key side computed apart."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models.cross_attention import CrossAttention, cut_keys


def inputs(nq, nk, d=48, batch=3):
  """x_q [batch, nq, d], x_kv [batch, nk, d], mask [batch, 1, 1, nk] (example 0 fully masked)."""
  kq, kkv, km = jax.random.split(jax.random.key(0), 3)
  mask = jax.random.bernoulli(km, 0.7, (batch, 1, 1, nk))
  mask = mask.at[0].set(False)  # a fully masked example: uniform weights, as in flax
  return jax.random.normal(kq, (batch, nq, d)), jax.random.normal(kkv, (batch, nk, d)), mask


def flax_reference(nq, nk):
  """(inputs, flax's module, its params with non-zero biases: each bias is then checked)."""
  x_q, x_kv, mask = inputs(nq, nk)
  module = nn.MultiHeadDotProductAttention(4)
  params = jax.tree.map(lambda p: p + 0.1, module.init(jax.random.key(1), x_q, x_kv)["params"])
  return (x_q, x_kv, mask), module, params


def test_parameters_are_flax_multi_head_attention_s():
  """Same tree, shapes and initial values (same names, same initialisers), so checkpoints and
  weight converters do not see the difference."""
  x_q, x_kv, _ = inputs(5, 7)
  ours = CrossAttention(4).init(jax.random.key(1), x_q, x_kv)
  ref = nn.MultiHeadDotProductAttention(4).init(jax.random.key(1), x_q, x_kv)
  assert jax.tree.structure(ours) == jax.tree.structure(ref)
  jax.tree.map(np.testing.assert_array_equal, ours, ref)


@pytest.mark.parametrize("nq,nk", [(20, 3), (2, 30)])
def test_the_function_is_flax_s(nq, nk):
  (x_q, x_kv, mask), ref_module, params = flax_reference(nq, nk)
  module = CrossAttention(4)
  for m in (mask, None):
    np.testing.assert_allclose(jax.jit(module.apply)({"params": params}, x_q, x_kv, m),
                               ref_module.apply({"params": params}, x_q, x_kv, mask=m),
                               rtol=1e-5, atol=1e-5)


def test_a_key_side_computed_apart_and_cut_gives_the_same_attention():
  """The tracker computes the first EMIM's key side once per sequence (x_q None), then attends
  over it every frame, cut to the text it keeps (`cut_keys`)."""
  (x_q, x_kv, mask), _, params = flax_reference(20, 6)
  module, variables = CrossAttention(4), {"params": params}
  keys = module.apply(variables, None, x_kv)
  assert {k: a.shape for k, a in keys.items()} == {"k": (3, 6, 4, 12), "v": (3, 6, 4, 12)}
  np.testing.assert_allclose(module.apply(variables, x_q, None, mask, keys=keys),
                             module.apply(variables, x_q, x_kv, mask), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(module.apply(variables, x_q, None, mask[..., :4],
                                          keys=cut_keys(keys, 4)),
                             module.apply(variables, x_q, x_kv[:, :4], mask[..., :4]),
                             rtol=1e-6, atol=1e-6)


def test_bf16_forward_and_backward_run_and_are_close_to_float32():
  x_q, x_kv, mask = inputs(40, 4)
  module, bf16 = CrossAttention(4), CrossAttention(4, dtype=jnp.bfloat16)
  params = module.init(jax.random.key(1), x_q, x_kv)["params"]
  loss = lambda m: jax.jit(jax.value_and_grad(
      lambda p: jnp.sum(m.apply({"params": p}, x_q, x_kv, mask).astype(jnp.float32) ** 2)))
  (ref, ref_grads), (out, grads) = loss(module)(params), loss(bf16)(params)
  np.testing.assert_allclose(out, ref, rtol=0.05)
  # Against the largest gradient: the key bias's is 0 (softmax ignores it; the form leaves it out).
  scale = max(float(jnp.abs(r).max()) for r in jax.tree.leaves(ref_grads))
  assert not jnp.any(grads["key"]["bias"]) and not jnp.any(ref_grads["key"]["bias"])
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, r, atol=0.02 * scale)


def test_errors():
  x_q, x_kv, _ = inputs(3, 3)
  with pytest.raises(ValueError, match="not divisible by num_heads=5"):
    CrossAttention(5).init(jax.random.key(0), x_q, x_kv)
  variables = CrossAttention(4).init(jax.random.key(0), x_q, x_kv)
  keys = CrossAttention(4).apply(variables, None, x_kv)
  for args in ((x_q, None), (None, None), (x_q, x_kv, None, keys), (None, None, None, keys)):
    with pytest.raises(ValueError, match="give two of x_q, x_kv and keys"):
      CrossAttention(4).apply(variables, *args)
