"""`model.template_cache`: template tokens never see the search crop, so the template's keys and
values are computed once per sequence (`LGTrack.condition(cache=True)`) and each frame
(`LGTrack.localize`) runs only the search tokens; the same function as the model's `__call__`,
which trains it with the block-structured attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import lgtrack
from lgtrack_jax.training import setup as setup_lib, sharding
from lgtrack_jax.training.fake_batch import random_batch
from tests.conftest import micro_config


def _config(template_cache=True, ce=(), template_range="box", dtype="float32"):
  config = micro_config()
  config.unlock()
  config.model.template_cache = template_cache
  config.model.ce.layers, config.model.ce.keep_ratio = ce, 0.5
  config.model.ce.template_range = template_range
  config.model.dtype = dtype
  return config


def _inputs(config, seed=0):
  """Three samples, one per model mode (2: box + text, 0: box, 1: text; the null template)."""
  rng = np.random.default_rng(seed)
  zs, xs, l = config.data.template_size, config.data.search_size, config.model.text.max_len
  mask = np.zeros((3, l), np.int32)
  mask[:, :5] = 1
  return {
      "template": jnp.asarray(rng.integers(0, 256, (3, zs, zs, 3)), jnp.uint8),
      "search": jnp.asarray(rng.integers(0, 256, (3, xs, xs, 3)), jnp.uint8),
      "template_box": jnp.asarray([[0.5, 0.5, 0.5, 0.5], [0.3, 0.6, 0.2, 0.4],
                                   [0.5, 0.5, 1.0, 1.0]], jnp.float32),
      "text_ids": jnp.asarray(rng.integers(1000, 2000, (3, l)) * mask, jnp.int32),
      "text_mask": jnp.asarray(mask),
      "mode": jnp.asarray([2, 0, 1], jnp.int32),
  }


def _model(config):
  """The model and its params, in the config's dtype, with the EMIM gates open (they start at 0,
  which would keep the text out of the vision tokens)."""
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  dtype = jnp.dtype(config.model.dtype)
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: (p + 0.5 if "alpha" in jax.tree_util.keystr(path) else p).astype(dtype),
      params)
  return model, {"params": params}


def _condition(model, variables, x, cache):
  text = model.apply(variables, x["text_ids"], x["text_mask"], method=model.encode_text)
  return model.apply(variables, x["template"], x["template_box"], x["text_mask"], x["mode"], text,
                     cache=cache, method=model.condition)


@pytest.mark.parametrize("ce,template_range,dtype", [
    ((), "box", "float32"),
    ((1,), "box", "float64"),  # float64: rounding far below any gap of the ranking (no flips)
    ((0, 1), "ctr_point", "float64"),
])
def test_cached_template_gives_the_full_forward(ce, template_range, dtype):
  """`condition(cache=True)` once, then `localize` (only the search tokens through the ViT, over
  each block's cached template keys and values) = `__call__` (template and search together, under
  the block-structured attention), with and without candidate elimination."""
  with jax.enable_x64(dtype == "float64"):
    config = _config(ce=ce, template_range=template_range, dtype=dtype)
    model, variables = _model(config)
    x = _inputs(config)
    full = jax.jit(model.apply)(variables, **x)
    per_frame = jax.jit(lambda v, x: model.apply(v, _condition(model, v, x, True), x["search"],
                                                 method=model.localize))(variables, x)
    # (The head and the embeddings hand their outputs back in float32, whatever the dtype.)
    for key in ("score_logits", "size", "offset", "boxes", "vision_tokens"):
      np.testing.assert_allclose(per_frame[key], full[key], atol=1e-5, rtol=0, err_msg=key)
    np.testing.assert_array_equal(per_frame["search_kept"], full["search_kept"])
    if ce:
      assert not np.all(np.asarray(full["search_kept"]))  # something was dropped


@pytest.mark.parametrize("template_cache", [True, False])
def test_template_side_does_not_see_the_search(template_cache):
  """With the option, the template tokens out of the ViT and the text the decoder reads are the
  same whatever the search crop; without it, both change with the crop (the template tokens attend
  to the search tokens, and the EMIMs refine the text from all vision tokens)."""
  config = _config(template_cache)
  model, variables = _model(config)
  x = _inputs(config)
  backbone = jax.jit(lambda v, search: model.apply(v, _condition(model, v, x, False), search,
                                                   method=model.backbone))
  a, b = backbone(variables, x["search"]), backbone(variables, 255 - x["search"])
  assert float(jnp.abs(a["x"] - b["x"]).max()) > 1e-3  # the search tokens do change
  for key in ("z", "t"):
    diff = float(jnp.abs(a[key] - b[key]).max())
    assert diff < 1e-6 if template_cache else diff > 1e-4, (key, diff)


def test_cache_needs_the_option():
  config = _config(template_cache=False)
  model, variables = _model(config)
  with pytest.raises(ValueError, match="model.template_cache"):
    _condition(model, variables, _inputs(config), cache=True)


@pytest.mark.slow  # ~14 s
def test_default_model_keeps_its_attention():
  """Off (the default), the option changes nothing: the same parameters and the template rows
  still attend to the search tokens (the two settings give different functions)."""
  on, off = _config(True), _config(False)
  assert micro_config().model.template_cache is False
  model_on, variables = _model(on)
  model_off = lgtrack.build_model(off)
  x = _inputs(on)
  shapes = lambda c: jax.tree.structure(jax.eval_shape(
      lgtrack.build_model(c).init, jax.random.key(0), **lgtrack.dummy_inputs(c)))
  assert shapes(on) == shapes(off)  # checkpoints move between the two
  diff = jnp.abs(model_on.apply(variables, **x)["score_logits"]
                 - model_off.apply(variables, **x)["score_logits"]).max()
  assert float(diff) > 1e-4


@pytest.mark.slow  # ~12 s: a train step compile
def test_one_train_step_with_the_cached_template_model():
  """The real jitted train step (optimizer included) trains the template_cache model, with
  candidate elimination: finite loss and gradients."""
  config = _config(ce=(1,))
  config.train.global_batch = 4
  mesh = sharding.make_mesh(config, jax.devices()[:1])
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  with jax.set_mesh(mesh):
    state, metrics = training.step(training.state,
                                   sharding.global_batch(random_batch(config, 4, 0), mesh))
  assert np.isfinite(float(metrics["loss"])), metrics
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(state.params))
