"""The tracker's folded cross-attention kernels equal the model's clear form."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import layers, lgtrack
from lgtrack_jax.models.cross_attention import CrossAttention, cut_keys
from lgtrack_jax.tracking import kernels
from tests.conftest import micro_config
from tests.models.test_cross_attention import flax_reference, inputs


def _variables(module, params, x_q, x_kv, by_head: bool):
  variables = {"params": params}
  if by_head:
    variables[kernels.BY_HEAD] = kernels.kernels_by_head(module.apply, variables, x_q, x_kv)
  return variables


@pytest.mark.parametrize("by_head", [False, True])
@pytest.mark.parametrize("fold", ["none", "keys", "queries", "auto"])
@pytest.mark.parametrize("nq,nk", [(20, 3), (2, 30), (9, 9)])
def test_every_fold_is_the_clear_form(fold, nq, nk, by_head):
  """by_head: with the heads-major kernels (the tracker's), the folds' per-head products."""
  (x_q, x_kv, mask), _, params = flax_reference(nq, nk)
  clear = CrossAttention(4)
  module = CrossAttention(4, kernel=kernels.with_fold(fold))
  variables = _variables(module, params, x_q, x_kv, by_head)
  for m in (mask, None):
    np.testing.assert_allclose(jax.jit(module.apply)(variables, x_q, x_kv, m),
                               clear.apply({"params": params}, x_q, x_kv, m),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("by_head", [False, True])
def test_a_folded_key_side_computed_apart_and_cut_gives_the_same_attention(by_head):
  (x_q, x_kv, mask), _, params = flax_reference(20, 6)
  clear, module = CrossAttention(4), CrossAttention(4, kernel=kernels.folded)
  variables = _variables(module, params, x_q, x_kv, by_head)
  keys = jax.jit(lambda v, x: module.apply(v, None, x))(variables, x_kv)
  assert {k: a.shape for k, a in keys.items()} == {
      "kq": (3, 6, 48, 4), "kbias": (3, 6, 4), "vo": (3, 6, 4, 48)}
  attend = jax.jit(lambda v, x, keys, m: module.apply(v, x, None, m, keys=keys))
  np.testing.assert_allclose(attend(variables, x_q, keys, mask),
                             clear.apply({"params": params}, x_q, x_kv, mask),
                             rtol=1e-5, atol=1e-5)
  cut = cut_keys(keys, 4)
  np.testing.assert_allclose(attend(variables, x_q, cut, mask[..., :4]),
                             clear.apply({"params": params}, x_q, x_kv[:, :4], mask[..., :4]),
                             rtol=1e-5, atol=1e-5)
  for k, a in module.apply(variables, None, x_kv[:, :4]).items():
    np.testing.assert_allclose(cut[k], a, rtol=1e-6, atol=1e-6, err_msg=k)


class _TwoAttentions(nn.Module):
  @nn.compact
  def __call__(self, x_q, x_kv):
    return (CrossAttention(4, kernel=kernels.folded, name="cross")(x_q, x_kv)
            + nn.MultiHeadDotProductAttention(4, name="flax")(x_q, x_kv))


def test_kernels_by_head_are_the_kernels_heads_major_and_never_made_by_init():
  x_q, x_kv, _ = inputs(20, 3)
  model = _TwoAttentions()
  variables = model.init(jax.random.key(1), x_q, x_kv)
  assert set(variables) == {"params"}
  by_head = kernels.kernels_by_head(model.apply, variables, x_q, x_kv)
  assert set(by_head) == {"cross"}
  cross = variables["params"]["cross"]
  for name in ("query", "key", "value"):
    np.testing.assert_array_equal(by_head["cross"][f"{name}_kernel"],
                                  cross[name]["kernel"].transpose(1, 0, 2))
  # bf16 (the tracker holds bf16 kernels, `layers.cast_kernels`): runs, close to float32.
  for fold in ("keys", "queries"):
    module = CrossAttention(4, dtype=jnp.bfloat16, kernel=kernels.with_fold(fold))
    bf16 = layers.cast_kernels({"params": cross}, jnp.bfloat16)
    bf16[kernels.BY_HEAD] = kernels.kernels_by_head(module.apply, bf16, x_q, x_kv)
    assert bf16[kernels.BY_HEAD]["query_kernel"].dtype == jnp.bfloat16
    ref = CrossAttention(4).apply({"params": cross}, x_q, x_kv)
    np.testing.assert_allclose(module.apply(bf16, x_q, x_kv).astype(jnp.float32), ref,
                               rtol=0.05, atol=0.05)


@pytest.mark.parametrize("nq,nk", [(20, 8), (8, 20), (1, 30)])
@pytest.mark.parametrize("fold", ["keys", "queries"])
def test_bf16_folds_run_at_batch_2(fold, nq, nk):
  """XLA:CPU lacks bf16 x bf16 = f32 kernels for some product layouts at batch > 1 (the speed
  benchmark tracks K = 2 sequences in bf16)."""
  x_q, x_kv, mask = inputs(nq, nk, batch=2)
  params = CrossAttention(4).init(jax.random.key(1), x_q, x_kv)["params"]
  module = CrossAttention(4, dtype=jnp.bfloat16, kernel=kernels.with_fold(fold))
  bf16 = layers.cast_kernels({"params": params}, jnp.bfloat16)
  bf16[kernels.BY_HEAD] = kernels.kernels_by_head(module.apply, bf16, x_q, x_kv)
  out = jax.jit(module.apply)(bf16, x_q, x_kv, mask).astype(jnp.float32)
  np.testing.assert_allclose(out, CrossAttention(4).apply({"params": params}, x_q, x_kv, mask),
                             rtol=0.05, atol=0.05)


def test_the_model_with_folded_kernels_is_the_model():
  """The whole micro LGTrack (EMIMs and decoder) with the tracker's kernels: the same outputs."""
  config = micro_config()
  model = lgtrack.build_model(config)
  inputs_ = lgtrack.dummy_inputs(config, batch=2)
  k = jax.random.split(jax.random.key(3), 3)
  inputs_["template"] = jax.random.randint(k[0], inputs_["template"].shape, 0, 255, jnp.int32)
  inputs_["search"] = jax.random.randint(k[1], inputs_["search"].shape, 0, 255, jnp.int32)
  inputs_["text_ids"] = jax.random.randint(k[2], inputs_["text_ids"].shape, 1, 100, jnp.int32)
  inputs_["text_mask"] = inputs_["text_mask"].at[:, 5:].set(0)
  params = jax.tree.map(lambda p: p + 0.05,  # every gate open (EMIM's alphas start at 0)
                        jax.jit(model.init)(jax.random.key(0), **inputs_)["params"])
  folded = model.clone(cross_attention_kernel=kernels.folded)
  variables = {"params": params, kernels.BY_HEAD: kernels.kernels_by_head(
      folded.apply, {"params": params}, **inputs_)}
  # Every cross-attention has its heads-major kernels, though at these shapes (40 text tokens)
  # EMIM takes the clear form: the tracker's shorter sentences take the folds.
  by_head = flax.traverse_util.flatten_dict(variables[kernels.BY_HEAD])
  c = config.model
  assert len(by_head) == 3 * (2 * len(c.emim.layers) + c.decoder.num_layers), sorted(by_head)
  want, got = jax.jit(model.apply)({"params": params}, **inputs_), jax.jit(folded.apply)(
      variables, **inputs_)
  for key in ("score_logits", "boxes", "vision_tokens"):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_auto_takes_the_cheapest_form():
  costs = kernels.fold_costs(320, 8, 768, 12)  # EMIM language -> vision, an 8-token sentence
  assert min(costs, key=costs.get) == "keys" and costs["none"] > 2 * costs["keys"]
  costs = kernels.fold_costs(8, 320, 768, 12)  # EMIM vision -> language
  assert min(costs, key=costs.get) == "queries" and costs["none"] > 2 * costs["queries"]
  costs = kernels.fold_costs(1, 296, 256, 8)  # the decoder's one query over search + text tokens
  assert min(costs, key=costs.get) == "queries" and costs["none"] > 10 * costs["queries"]
  for nq, nk in ((320, 40), (320, 320)):  # training's 40 text tokens; self-attention sized
    costs = kernels.fold_costs(nq, nk, 768, 12)
    assert min(costs, key=costs.get) == "none"


def test_errors():
  x_q, x_kv, _ = inputs(3, 3)
  variables = CrossAttention(4).init(jax.random.key(0), x_q, x_kv)
  with pytest.raises(ValueError, match="fold='rows'"):
    CrossAttention(4, kernel=kernels.with_fold("rows")).apply(variables, x_q, x_kv)
  with pytest.raises(ValueError, match="key side is the 'keys' fold's; this kernel's fold is 'none'"):
    CrossAttention(4, kernel=kernels.with_fold("none")).apply(variables, None, x_kv)
  with pytest.raises(ValueError, match="eval.cross_attention='fast'"):
    kernels.cross_attention_kernel("fast")
