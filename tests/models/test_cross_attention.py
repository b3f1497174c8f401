"""CrossAttention: flax's multi-head attention, computed with the projections folded through the
short side."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import layers
from lgtrack_jax.models.cross_attention import (BY_HEAD, CrossAttention, cut_keys, fold_costs,
                                                kernels_by_head)


def _inputs(nq, nk, d=48, batch=3):
  kq, kkv, km = jax.random.split(jax.random.key(0), 3)
  mask = jax.random.bernoulli(km, 0.7, (batch, 1, 1, nk))
  mask = mask.at[0].set(False)  # a fully masked example: uniform weights, as in flax
  return jax.random.normal(kq, (batch, nq, d)), jax.random.normal(kkv, (batch, nk, d)), mask


def test_parameters_are_flax_multi_head_attention_s():
  """Same tree, shapes and initial values (same names, same initialisers), so checkpoints and
  weight converters do not see the difference."""
  x_q, x_kv, _ = _inputs(5, 7)
  ours = CrossAttention(4).init(jax.random.key(1), x_q, x_kv)
  ref = nn.MultiHeadDotProductAttention(4).init(jax.random.key(1), x_q, x_kv)
  assert jax.tree.structure(ours) == jax.tree.structure(ref)
  jax.tree.map(np.testing.assert_array_equal, ours, ref)


@pytest.mark.parametrize("by_head", [False, True])
@pytest.mark.parametrize("fold", ["none", "keys", "queries", "auto"])
@pytest.mark.parametrize("nq,nk", [(20, 3), (2, 30), (9, 9)])
def test_every_form_is_flax_s_function(fold, nq, nk, by_head):
  """by_head: with the heads-major kernels (the tracker's), the folds' per-head products."""
  x_q, x_kv, mask = _inputs(nq, nk)
  ref_module = nn.MultiHeadDotProductAttention(4)
  # Non-zero biases: the folds treat each bias on its own.
  params = jax.tree.map(lambda p: p + 0.1, ref_module.init(jax.random.key(1), x_q, x_kv)["params"])
  ref = ref_module.apply({"params": params}, x_q, x_kv, mask=mask)
  module = CrossAttention(4, fold=fold)
  variables = {"params": params}
  if by_head:
    variables[BY_HEAD] = kernels_by_head(module.apply, variables, x_q, x_kv)
  out = jax.jit(module.apply)(variables, x_q, x_kv, mask)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  no_mask = module.apply(variables, x_q, x_kv)
  np.testing.assert_allclose(no_mask, ref_module.apply({"params": params}, x_q, x_kv),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nq,nk", [(40, 4), (4, 40)])
def test_bf16_forward_and_backward_run_and_are_close_to_float32(nq, nk):
  """Both folds run in bf16 with float32 accumulation on XLA:CPU, forward and backward (its generic
  dot has no bf16 x bf16 = f32 kernel, which some product layouts of the folds would reach)."""
  x_q, x_kv, mask = _inputs(nq, nk)
  module, bf16 = CrossAttention(4), CrossAttention(4, dtype=jnp.bfloat16)
  params = module.init(jax.random.key(1), x_q, x_kv)["params"]
  loss = lambda m: jax.jit(jax.value_and_grad(
      lambda p: jnp.sum(m.apply({"params": p}, x_q, x_kv, mask).astype(jnp.float32) ** 2)))
  (ref, ref_grads), (out, grads) = loss(module)(params), loss(bf16)(params)
  np.testing.assert_allclose(out, ref, rtol=0.05)
  # Against the largest gradient: the key bias's is 0 in exact arithmetic (softmax ignores it).
  scale = max(float(jnp.abs(r).max()) for r in jax.tree.leaves(ref_grads))
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, r, atol=0.02 * scale)


class _TwoAttentions(nn.Module):
  @nn.compact
  def __call__(self, x_q, x_kv):
    return (CrossAttention(4, name="cross")(x_q, x_kv)
            + nn.MultiHeadDotProductAttention(4, name="flax")(x_q, x_kv))


def test_kernels_by_head_are_the_cross_attentions_kernels_heads_major_and_never_made_by_init():
  x_q, x_kv, _ = _inputs(20, 3)
  model = _TwoAttentions()
  variables = model.init(jax.random.key(1), x_q, x_kv)
  assert set(variables) == {"params"}  # training never holds (or uses) the copies
  by_head = kernels_by_head(model.apply, variables, x_q, x_kv)
  assert set(by_head) == {"cross"}
  cross = variables["params"]["cross"]
  for name in ("query", "key", "value"):
    np.testing.assert_array_equal(by_head["cross"][f"{name}_kernel"],
                                  cross[name]["kernel"].transpose(1, 0, 2))
  # bf16 (the tracker holds bf16 kernels, `layers.cast_kernels`): runs, close to float32.
  for fold in ("keys", "queries"):
    module = CrossAttention(4, dtype=jnp.bfloat16, fold=fold)
    bf16 = layers.cast_kernels({"params": cross}, jnp.bfloat16)
    bf16[BY_HEAD] = kernels_by_head(module.apply, bf16, x_q, x_kv)
    assert bf16[BY_HEAD]["query_kernel"].dtype == jnp.bfloat16
    ref = CrossAttention(4, fold=fold).apply({"params": cross}, x_q, x_kv)
    np.testing.assert_allclose(module.apply(bf16, x_q, x_kv).astype(jnp.float32), ref,
                               rtol=0.05, atol=0.05)


@pytest.mark.parametrize("by_head", [False, True])
@pytest.mark.parametrize("fold", ["auto", "keys"])
def test_a_key_side_computed_apart_gives_the_same_attention(fold, by_head):
  """The tracker computes the first EMIM's key side once per sequence (x_q None), then attends
  over it every frame, cut to the text it keeps (`cut_keys`): the same as attending over x_kv
  (whatever form 'auto' takes for these shapes), or over x_kv's first keys."""
  x_q, x_kv, mask = _inputs(20, 6)
  module = CrossAttention(4, fold=fold)
  params = jax.tree.map(lambda p: p + 0.1, module.init(jax.random.key(1), x_q, x_kv)["params"])
  variables = {"params": params}
  if by_head:
    variables[BY_HEAD] = kernels_by_head(module.apply, variables, x_q, x_kv)
  keys = jax.jit(lambda v, x: module.apply(v, None, x))(variables, x_kv)
  assert {k: a.shape for k, a in keys.items()} == {
      "kq": (3, 48, 4, 6), "kbias": (3, 4, 6), "vo": (3, 4, 6, 48)}
  attend = jax.jit(lambda v, x, keys, m: module.apply(v, x, None, m, keys=keys))
  np.testing.assert_allclose(attend(variables, x_q, keys, mask),
                             module.apply(variables, x_q, x_kv, mask), rtol=1e-5, atol=1e-5)
  cut = cut_keys(keys, 4)
  np.testing.assert_allclose(attend(variables, x_q, cut, mask[..., :4]),
                             module.apply(variables, x_q, x_kv[:, :4], mask[..., :4]),
                             rtol=1e-5, atol=1e-5)
  for k, a in module.apply(variables, None, x_kv[:, :4]).items():
    np.testing.assert_allclose(cut[k], a, rtol=1e-6, atol=1e-6, err_msg=k)


def test_auto_takes_the_cheapest_form():
  costs = fold_costs(320, 8, 768, 12)  # EMIM language -> vision, an 8-token sentence
  assert min(costs, key=costs.get) == "keys" and costs["none"] > 2 * costs["keys"]
  costs = fold_costs(8, 320, 768, 12)  # EMIM vision -> language
  assert min(costs, key=costs.get) == "queries" and costs["none"] > 2 * costs["queries"]
  costs = fold_costs(1, 296, 256, 8)  # the decoder's one query over search + text tokens
  assert min(costs, key=costs.get) == "queries" and costs["none"] > 10 * costs["queries"]
  for nq, nk in ((320, 40), (320, 320)):  # training's 40 text tokens; self-attention sized
    costs = fold_costs(nq, nk, 768, 12)
    assert min(costs, key=costs.get) == "none"


def test_errors():
  x_q, x_kv, _ = _inputs(3, 3)
  with pytest.raises(ValueError, match="fold='rows'"):
    CrossAttention(4, fold="rows").init(jax.random.key(0), x_q, x_kv)
  with pytest.raises(ValueError, match="not divisible by num_heads=5"):
    CrossAttention(5).init(jax.random.key(0), x_q, x_kv)
  variables = CrossAttention(4).init(jax.random.key(0), x_q, x_kv)
  keys = CrossAttention(4).apply(variables, None, x_kv)
  for args in ((x_q, None), (None, None), (x_q, x_kv, None, keys), (None, None, None, keys)):
    with pytest.raises(ValueError, match="give two of x_q, x_kv and keys"):
      CrossAttention(4).apply(variables, *args)
  with pytest.raises(ValueError, match="key side is the 'keys' fold's; this module's fold is 'none'"):
    CrossAttention(4, fold="none").apply(variables, None, x_kv)
