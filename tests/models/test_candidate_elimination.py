"""Candidate elimination (`model.ce`, OSTrack): which tokens go, what the model does without them."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax import losses
from lgtrack_jax.models import layers, lgtrack
from lgtrack_jax.models.vit import Block
from lgtrack_jax.tokenizer import Tokenizer
from lgtrack_jax.tracking.tracker import LGTracker
from tests.conftest import micro_config


def _ce_config(layers_=(1,), keep_ratio=0.5):
  config = micro_config()
  config.unlock()
  config.model.ce.layers = layers_
  config.model.ce.keep_ratio = keep_ratio
  return config


def _inputs(config, batch=3, seed=0):
  rng = np.random.default_rng(seed)
  zs, xs, l = config.data.template_size, config.data.search_size, config.model.text.max_len
  mask = np.zeros((batch, l), np.int32)
  mask[:, :5] = 1
  return {
      "template": jnp.asarray(rng.integers(0, 256, (batch, zs, zs, 3)), jnp.uint8),
      "search": jnp.asarray(rng.integers(0, 256, (batch, xs, xs, 3)), jnp.uint8),
      "template_box": jnp.asarray([[0.5, 0.5, 0.5, 0.5], [0.3, 0.6, 0.2, 0.4],
                                   [0.5, 0.5, 1.0, 1.0]][:batch], jnp.float32),
      "text_ids": jnp.asarray(rng.integers(1000, 2000, (batch, l)) * mask, jnp.int32),
      "text_mask": jnp.asarray(mask),
      "mode": jnp.asarray([2, 0, 1][:batch], jnp.int32),
  }


def test_self_attention_is_flax_multi_head_attention():
  """Same parameter tree and the same function as nn.MultiHeadDotProductAttention (the weight
  converters and older checkpoints depend on that)."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 16)), jnp.float32)
  mha = nn.MultiHeadDotProductAttention(num_heads=4)
  params = mha.init(jax.random.key(0), x, x)
  ours = layers.SelfAttention(4)
  assert jax.tree.structure(ours.init(jax.random.key(0), x)) == jax.tree.structure(params)
  out, q, k, v = ours.apply(params, x)
  np.testing.assert_allclose(out, mha.apply(params, x, x), atol=1e-6)
  assert q.shape == k.shape == v.shape == (2, 7, 4, 4)
  # Its two halves (`model.template_cache`): the first 3 tokens attend only to each other, the
  # rest to all; and the same rows over those 3 tokens' keys and values given apart (a cache).
  split, *_ = ours.apply(params, x, isolate=3)
  head, _, k3, v3 = ours.apply(params, x[:, :3])
  np.testing.assert_allclose(split[:, :3], head, atol=1e-6)
  np.testing.assert_allclose(split[:, 3:], out[:, 3:], atol=1e-6)
  rest, *_ = ours.apply(params, x[:, 3:], prefix={"k": k3, "v": v3})
  np.testing.assert_allclose(rest, out[:, 3:], atol=1e-6)


def test_block_keeps_the_search_tokens_the_target_attends_to():
  """A CE block is the plain block with rows dropped after it (the MLP is token-wise), and the
  rows kept are the top-k of the target template tokens' mean attention (from flax's weights)."""
  nz, ns, keep, d, heads = 4, 12, 5, 16, 2
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(3, nz + ns, d)), jnp.float32)
  z_mask = jnp.asarray([[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]], bool)
  plain = Block(heads)
  params = plain.init(jax.random.key(0), x)
  ce = Block(heads, num_template=nz, keep_search=keep)
  out, kept = ce.apply(params, x, z_mask)
  full = plain.apply(params, x)
  assert out.shape == (3, nz + keep, d) and kept.shape == (3, keep)
  np.testing.assert_allclose(out[:, :nz], full[:, :nz], atol=1e-5)
  np.testing.assert_allclose(out[:, nz:], jnp.take_along_axis(full[:, nz:], kept[..., None], 1),
                             atol=1e-5)

  # Reference ranking from nn.MultiHeadDotProductAttention's own attention weights.
  y = nn.LayerNorm(epsilon=1e-6).apply({"params": params["params"]["norm1"]}, x)
  mha = nn.MultiHeadDotProductAttention(num_heads=heads)
  _, inter = mha.apply({"params": params["params"]["attn"]}, y, y, sow_weights=True,
                       mutable="intermediates")
  (weights,) = jax.tree.leaves(inter)  # [B, H, N, N]
  w = np.asarray(weights)[:, :, :nz, nz:].mean(1)  # [B, nz, ns]
  m = np.asarray(z_mask, np.float32)
  score = (w * m[:, :, None]).sum(1) / m.sum(1, keepdims=True)
  for b in range(3):
    assert set(np.argsort(-score[b])[:keep]) == set(np.asarray(kept[b]))


def test_keep_schedule_and_config_errors():
  c = _ce_config((1, 0), 0.5).model  # 16 search tokens (64 / 16 = 4x4)
  assert lgtrack.search_tokens_kept(c, 16) == {0: 8, 1: 4}
  assert lgtrack.search_tokens_kept(_ce_config((0, 1), 0.7).model, 16) == {0: 12, 1: 9}
  assert lgtrack.search_tokens_kept(_ce_config((0,), 0.99).model, 16) == {}  # keeps all: off
  assert lgtrack.search_tokens_kept(_ce_config(()).model, 16) == {}
  with pytest.raises(ValueError, match=r"model.ce.layers=\(5,\)"):
    lgtrack.search_tokens_kept(_ce_config((5,)).model, 16)
  with pytest.raises(ValueError, match="model.ce.keep_ratio=0.0"):
    lgtrack.search_tokens_kept(_ce_config((1,), 0.0).model, 16)


@pytest.fixture(scope="module")
def models():
  plain_config, ce_config = micro_config(), _ce_config()
  plain, ce = lgtrack.build_model(plain_config), lgtrack.build_model(ce_config)
  params = jax.jit(plain.init)(jax.random.key(0), **lgtrack.dummy_inputs(plain_config))["params"]
  return plain_config, plain, ce_config, ce, params


def test_model_with_elimination(models):
  plain_config, plain, ce_config, ce, params = models
  ce_params = jax.eval_shape(ce.init, jax.random.key(0), **lgtrack.dummy_inputs(ce_config))
  assert jax.tree.structure(ce_params["params"]) == jax.tree.structure(params)  # same checkpoint
  x = _inputs(ce_config)
  out = jax.jit(ce.apply)({"params": params}, **x)
  ref = jax.jit(plain.apply)({"params": params}, **x)
  for key in ("score_logits", "size", "offset", "boxes", "vision_tokens"):
    assert out[key].shape == ref[key].shape, key
    assert np.all(np.isfinite(out[key])), key
  kept = np.asarray(out["search_kept"])
  assert kept.shape == (3, 16) and np.all(kept.sum(1) == 8)
  assert np.all(np.asarray(ref["search_kept"]))
  assert not np.allclose(out["score_logits"], ref["score_logits"])  # something was dropped
  # Dropped tokens are zeros before the projection: only its bias is left there.
  bias = np.asarray(params["vision_embed_proj"]["bias"])
  np.testing.assert_allclose(np.asarray(out["vision_tokens"])[~kept],
                             np.broadcast_to(bias, ((~kept).sum(), bias.size)), atol=1e-6)
  # It saves compute.
  flops = lambda m: m.lower({"params": params}, **x).compile().cost_analysis()["flops"]
  assert flops(jax.jit(ce.apply)) < 0.99 * flops(jax.jit(plain.apply))  # (micro: text, head dominate)


def test_training_through_elimination(models):
  _, _, ce_config, ce, params = models
  batch = {**_inputs(ce_config), "search_box": jnp.asarray([[0.5, 0.5, 0.3, 0.3]] * 3)}

  def loss_fn(p):
    out = ce.apply({"params": p}, **{k: batch[k] for k in lgtrack.dummy_inputs(ce_config)})
    return losses.total_loss(out, batch, ce_config.loss)

  (loss, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  assert np.isfinite(float(loss)) and np.isfinite(float(metrics["contrastive"]))
  flat = flax.traverse_util.flatten_dict(grads)
  assert all(np.all(np.isfinite(g)) for g in flat.values())
  for block in ("blocks_0", "blocks_1"):
    assert any(np.any(g) for k, g in flat.items() if k[0] == block), block


def test_tracker_with_elimination(models):
  _, _, ce_config, ce, params = models
  tracker = LGTracker(ce, params, ce_config, Tokenizer(ce_config.model.text.tokenizer,
                                                       ce_config.model.text.max_len))
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(4)]
  boxes, _ = tracker.track(frames, np.array([60.0, 30.0, 20.0, 16.0]), "the red car", "nl_bbox")
  assert boxes.shape == (4, 4) and np.all(np.isfinite(boxes))
  assert np.all(boxes[:, 0] + boxes[:, 2] <= 160 + 1e-3) and np.all(boxes[:, 2:] >= 1)
