"""LGTrack: shapes, gradients, the role of the sentence per mode, masking, the EMIM gate."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax import losses
from lgtrack_jax.models import head as head_lib, layers, lgtrack
from lgtrack_jax.training import optim


def _inputs(config, batch=2, seed=0, mode=2):
  rng = np.random.default_rng(seed)
  zs, xs, l = config.data.template_size, config.data.search_size, config.model.text.max_len
  ids = rng.integers(1000, 2000, (batch, l)).astype(np.int32)
  mask = np.zeros((batch, l), np.int32)
  mask[:, :6] = 1
  ids = ids * mask
  return {
      "template": jnp.asarray(rng.integers(0, 256, (batch, zs, zs, 3)), jnp.uint8),
      "search": jnp.asarray(rng.integers(0, 256, (batch, xs, xs, 3)), jnp.uint8),
      "template_box": jnp.asarray([[0.5, 0.5, 0.4, 0.3]] * batch, jnp.float32),
      "text_ids": jnp.asarray(ids),
      "text_mask": jnp.asarray(mask),
      "mode": jnp.full((batch,), mode, jnp.int32),
  }


@pytest.fixture(scope="module")
def model_and_params():
  """Built once per module: init compiles in ~10 s on a CPU. Tests must not mutate it."""
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **_inputs(config))["params"]
  return model, params


@pytest.fixture(scope="module")
def apply(model_and_params):
  """The model's apply, jitted once per module (run op by op, the micro model takes seconds)."""
  return jax.jit(model_and_params[0].apply)


def _open_gates(params, value=0.5):
  """EMIM gates start at 0 (identity); open them so language actually flows into the ViT."""
  flat = flax.traverse_util.flatten_dict(params)
  flat = {k: (jnp.full_like(v, value) if k[-1] in ("alpha_ca", "alpha_gm") else v)
          for k, v in flat.items()}
  return flax.traverse_util.unflatten_dict(flat)


def test_output_shapes(config, model_and_params, apply):
  model, params = model_and_params
  out = apply({"params": params}, **_inputs(config, batch=3))
  g = config.data.search_size // config.model.patch_size
  assert out["score_logits"].shape == (3, g, g)
  assert out["size"].shape == (3, g, g, 2)
  assert out["offset"].shape == (3, g, g, 2)
  assert out["boxes"].shape == (3, 4)
  assert out["vision_tokens"].shape == (3, g * g, config.model.embed_dim)
  assert out["text_embed"].shape == (3, config.model.embed_dim)
  assert out["has_text"].dtype == jnp.bool_
  text = model.apply({"params": params}, _inputs(config)["text_ids"], _inputs(config)["text_mask"],
                     method=model.encode_text)
  assert text["tokens"].shape == (2, config.model.text.max_len, config.model.text.hidden_size)
  assert text["sentence"].shape == (2, config.model.text.hidden_size)
  for v in jax.tree.leaves(out):
    assert np.all(np.isfinite(np.asarray(v, np.float32)))


def test_gradients_reach_every_parameter(config, model_and_params, apply):
  model, params = model_and_params
  params = _open_gates(params)
  batch = {**_inputs(config, batch=4), "search_box": jnp.asarray([[0.5, 0.5, 0.3, 0.3]] * 4)}
  batch["mode"] = jnp.asarray([0, 1, 2, 2], jnp.int32)

  def loss_fn(p):
    out = apply({"params": p}, **{k: batch[k] for k in lgtrack.dummy_inputs(config)})
    return losses.total_loss(out, batch, config.loss)[0]

  grads = jax.jit(jax.grad(loss_fn))(params)
  flat = flax.traverse_util.flatten_dict(grads)
  # The position-id rows beyond max_len and unused vocabulary rows legitimately get no gradient;
  # so do the cross-attentions' key biases (one logit added to all keys of a query: softmax
  # ignores it), which CrossAttention leaves out.
  cross_key_bias = lambda k: k[-2:] == ("key", "bias") and k[-3] in (
      "lang_to_vision", "vision_to_lang", "cross_attn")
  dead = [k for k, g in flat.items() if not np.any(np.asarray(g))
          and not (k[0] == "text_encoder" and "embedding" in k[-1]) and not cross_key_bias(k)]
  assert not dead, f"parameters without gradient: {dead}"
  labels = flax.traverse_util.flatten_dict(optim.param_labels(params))
  for group in ("backbone", "text", "head"):
    norm = sum(float(jnp.sum(flat[k] ** 2)) for k, l in labels.items() if l == group)
    assert norm > 0, group


@pytest.mark.parametrize("mode,changes", [(0, False), (1, True), (2, True)])
def test_sentence_matters_only_with_language(config, model_and_params, apply, mode, changes):
  model, params = model_and_params
  params = _open_gates(params)
  a = _inputs(config, mode=mode)
  b = dict(a, text_ids=jnp.where(a["text_mask"] > 0, a["text_ids"] + 7, 0))
  out_a = apply({"params": params}, **a)
  out_b = apply({"params": params}, **b)
  diff = float(jnp.abs(out_a["score_logits"] - out_b["score_logits"]).max())
  assert (diff > 1e-4) == changes, diff


def test_template_ignored_in_language_only_mode(config, model_and_params, apply):
  model, params = model_and_params
  a = _inputs(config, mode=1)
  b = dict(a, template=255 - a["template"], template_box=jnp.asarray([[0.2, 0.3, 0.1, 0.1]] * 2))
  np.testing.assert_allclose(apply({"params": params}, **a)["score_logits"],
                             apply({"params": params}, **b)["score_logits"], atol=1e-6)
  c = dict(a, mode=jnp.full((2,), 2, jnp.int32))
  d = dict(b, mode=jnp.full((2,), 2, jnp.int32))
  assert float(jnp.abs(apply({"params": params}, **c)["score_logits"]
                       - apply({"params": params}, **d)["score_logits"]).max()) > 1e-4


def test_padding_tokens_change_nothing(config, model_and_params, apply):
  params = _open_gates(model_and_params[1])
  a = _inputs(config)
  # Same sentence, padded to 12 tokens with different (masked) garbage in the padding.
  b = dict(a, text_ids=jnp.where(a["text_mask"] > 0, a["text_ids"], 999))
  out_a, out_b = apply({"params": params}, **a), apply({"params": params}, **b)
  for k in ("score_logits", "size", "offset", "text_embed"):
    np.testing.assert_allclose(out_a[k], out_b[k], atol=1e-5, err_msg=k)
  # ... and padded to 20 tokens (same params: only the position table is indexed further).
  a20 = dict(a, text_ids=jnp.pad(a["text_ids"], ((0, 0), (0, 8))),
             text_mask=jnp.pad(a["text_mask"], ((0, 0), (0, 8))))
  np.testing.assert_allclose(out_a["score_logits"],
                             apply({"params": params}, **a20)["score_logits"], atol=1e-5)


def test_emim_gate_leaves_vit_unchanged_at_init(config, model_and_params, apply):
  model, params = model_and_params
  config.unlock()
  config.model.emim.layers = ()
  plain = lgtrack.build_model(config)
  plain_params = {k: v for k, v in params.items() if not k.startswith("emims")}
  x = _inputs(config, mode=2)
  with_emim = apply({"params": params}, **x)["vision_tokens"]
  without = plain.apply({"params": plain_params}, **x)["vision_tokens"]
  np.testing.assert_allclose(with_emim, without, atol=1e-6)
  opened = apply({"params": _open_gates(params)}, **x)["vision_tokens"]
  assert float(jnp.abs(opened - without).max()) > 1e-4


def test_bad_emim_layer_is_an_error(config):
  config.unlock()
  config.model.emim.layers = (0, 5)
  model = lgtrack.build_model(config)
  with pytest.raises(ValueError, match="emim.layers"):
    jax.eval_shape(model.init, jax.random.key(0), **_inputs(config))


def test_remat_changes_nothing_but_memory(config, model_and_params):
  model, params = model_and_params
  config.unlock()
  config.model.remat = True
  remat = lgtrack.build_model(config)
  x = _inputs(config)
  np.testing.assert_allclose(jax.jit(remat.apply)({"params": params}, **x)["score_logits"],
                             jax.jit(model.apply)({"params": params}, **x)["score_logits"],
                             atol=1e-5)


def test_selected_cells_give_the_boxes_of_the_full_maps(config, model_and_params):
  """select_cells (the tracker's path: size/offset only around the chosen cell) reads the same
  boxes as the full maps do, at the score maximum and at any other cell."""
  model, params = model_and_params
  x = _inputs(config, batch=3)
  apply = jax.jit(model.apply, static_argnames="select_cells")
  ref = apply({"params": params}, **x)
  at_max = apply({"params": params}, **x, select_cells=head_lib.argmax_cells)
  np.testing.assert_array_equal(at_max["score_logits"], ref["score_logits"])
  np.testing.assert_allclose(at_max["boxes"], ref["boxes"], atol=1e-5)
  corner = lambda s: jnp.zeros((s.shape[0], 2), jnp.int32)
  at_corner = apply({"params": params}, **x, select_cells=corner)
  np.testing.assert_allclose(at_corner["boxes"],
                             head_lib.boxes_at(ref["size"], ref["offset"], corner(ref["size"])),
                             atol=1e-5)


@pytest.mark.parametrize("impl", ["xla", "matmul"])
def test_attention_kernels_match_flax(config, model_and_params, impl):
  """model.attention='xla' (jax.nn.dot_product_attention) or 'matmul' is the same function."""
  model, params = model_and_params
  config.unlock()
  config.model.attention = impl
  fused = lgtrack.build_model(config)
  x = _inputs(config)
  np.testing.assert_allclose(jax.jit(fused.apply)({"params": params}, **x)["score_logits"],
                             jax.jit(model.apply)({"params": params}, **x)["score_logits"],
                             atol=1e-5)
  config.model.attention = "flash"
  with pytest.raises(ValueError, match="model.attention='flash'"):
    jax.eval_shape(lgtrack.build_model(config).init, jax.random.key(0),
                   **lgtrack.dummy_inputs(config))


def test_matmul_convolutions_match_xla(config, model_and_params):
  """model.conv='matmul' (patch embedding and head as matrix products) is the same function."""
  model, params = model_and_params
  config.unlock()
  config.model.conv = "matmul"
  x = _inputs(config)
  out = jax.jit(lgtrack.build_model(config).apply)({"params": params}, **x)
  ref = jax.jit(model.apply)({"params": params}, **x)
  for key in ("score_logits", "size", "offset", "boxes"):
    np.testing.assert_allclose(out[key], ref[key], atol=1e-5, err_msg=key)


def test_bf16_inference_with_kernels_cast_once_is_the_same_function(config, model_and_params):
  """The tracker's layers.cast_kernels (bf16 weights held, not cast per frame) changes no number of
  the bf16 model: every kernel the model reads goes through a Dense / Conv / attention cast."""
  _, params = model_and_params
  config.unlock()
  config.model.dtype = "bfloat16"
  model = lgtrack.build_model(config)
  x = _inputs(config)
  cast = layers.cast_kernels(params, jnp.bfloat16)
  assert {l.dtype for l in jax.tree.leaves(cast)} == {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)}
  apply = jax.jit(model.apply)
  out, ref = apply({"params": cast}, **x), apply({"params": params}, **x)
  for key in ("score_logits", "size", "offset", "boxes", "vision_tokens", "text_embed"):
    np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
