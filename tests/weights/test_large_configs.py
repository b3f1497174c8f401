"""configs/lgtrack_b384.py and lgtrack_l384.py: their values, model shapes, weight conversion and
the tracker's per-frame function at their sizes.

Nothing of ViT-B or ViT-L is initialised, compiled or run: shapes come from `jax.eval_shape`,
and full-size state dicts are views into one random pool (distinct per key, so a key that lands
on the wrong param is seen, and no 300M-float dict is ever drawn or copied).
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from flax import traverse_util

from configs import lgtrack_b256, lgtrack_b384, lgtrack_l384, ostrack_b256
from lgtrack_jax.models import lgtrack
from lgtrack_jax.tracking.tracker import LGTracker
from lgtrack_jax.weights import checkpoint_io, convert, ostrack, pretrained
from lgtrack_jax.weights import vit as vit_lib
from tests.weights import reference

CONFIGS = {"lgtrack_b384": lgtrack_b384.get_config, "lgtrack_l384": lgtrack_l384.get_config}
# name -> (D, depth, heads, EMIM blocks)
SIZES = {"lgtrack_b384": (768, 12, 12, (0, 3, 6, 9)),
         "lgtrack_l384": (1024, 24, 16, (0, 6, 12, 18))}
PATCH, MAE_GRID = 16, 14  # MAE ViT-B/16 and ViT-L/16 are pretrained at 224 px: a 14 x 14 grid


def _ostrack_384():
  """configs/ostrack_b256.py at OSTrack-384's inputs (`vitb_384_mae_ce_32x4_ep300`)."""
  c = ostrack_b256.get_config()
  lgtrack_b384.use_384_inputs(c)
  return c


@functools.lru_cache(maxsize=None)
def _abstract(name: str) -> tuple[dict, dict]:
  """(outputs, params) of the config's model on dummy inputs, as ShapeDtypeStructs: one trace of
  `init_with_output`, nothing computed."""
  config = _ostrack_384() if name == "ostrack_384" else CONFIGS[name]()
  model = lgtrack.build_model(config)
  out, variables = jax.eval_shape(
      functools.partial(model.init_with_output, **lgtrack.dummy_inputs(config)),
      jax.random.key(0))
  return out, variables["params"]


def _param_shapes(name: str) -> dict[str, tuple[int, ...]]:
  """{'/'-joined path: shape}, as `vit_lib.model_param_shapes`."""
  flat = traverse_util.flatten_dict(_abstract(name)[1], sep="/")
  return {k: tuple(v.shape) for k, v in flat.items()}


@functools.lru_cache(maxsize=None)
def _pool() -> np.ndarray:
  """8M random float32, more than ViT-L's largest tensor (fc1, 4M) plus one per key."""
  return np.random.default_rng(0).standard_normal(1 << 23, dtype=np.float32)


def _pool_views(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  """{key: float32 view [shape] of the pool}, each starting one element after the previous key's
  start: distinct contents, no memory."""
  return {key: _pool()[i:i + math.prod(shape)].reshape(shape)
          for i, (key, shape) in enumerate(sorted(shapes.items()))}


def _timm_shapes(dim: int, depth: int, prefix: str = "") -> dict[str, tuple[int, ...]]:
  """{key: shape} of a timm / MAE ViT of width `dim` (MLP ratio 4) with a class token and a
  14 x 14 position grid: `reference.random_vit_state_dict`'s layout, without drawing it."""
  shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, 1 + MAE_GRID * MAE_GRID, dim),
            "patch_embed.proj.weight": (dim, 3, PATCH, PATCH), "patch_embed.proj.bias": (dim,),
            "norm.weight": (dim,), "norm.bias": (dim,)}
  for i in range(depth):
    p = f"blocks.{i}."
    shapes.update({p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,),
                   p + "attn.proj.weight": (dim, dim), p + "mlp.fc1.weight": (4 * dim, dim),
                   p + "mlp.fc1.bias": (4 * dim,), p + "mlp.fc2.weight": (dim, 4 * dim),
                   **{p + n: (dim,) for n in ("norm1.weight", "norm1.bias", "norm2.weight",
                                               "norm2.bias", "attn.proj.bias", "mlp.fc2.bias")}})
  return {prefix + k: v for k, v in shapes.items()}


def test_configs_change_only_inputs_and_vit_sizes():
  """Against lgtrack_b256, b384 changes the inputs as OSTrack-384's yaml does; l384 also the ViT
  (and the EMIMs' depths and heads with it). Nothing else differs; `:mix` works for both."""
  flat = lambda c: traverse_util.flatten_dict(c.to_dict(), sep=".")
  base = flat(lgtrack_b256.get_config())
  inputs = {"data.template_size": 192, "data.search_size": 384, "data.search_factor": 5.0,
            "data.search_center_jitter": 4.5, "data.search_scale_jitter": 0.5}
  vit_l = {"model.hidden_size": 1024, "model.depth": 24, "model.num_heads": 16,
           "model.emim.num_heads": 16, "model.emim.layers": (0, 6, 12, 18)}
  for name, changed in (("lgtrack_b384", inputs), ("lgtrack_l384", {**inputs, **vit_l})):
    config = CONFIGS[name]()
    assert config.is_locked
    values = flat(config)
    assert {k: v for k, v in values.items() if v != base[k]} == changed, name
    assert values["data.template_factor"] == 2.0 and values["model.pretrain_grid"] == MAE_GRID
    assert CONFIGS[name]("mix").data.train == lgtrack_b256.MIXTURE
    with pytest.raises(ValueError, match=f"{name}: unknown variant"):
      CONFIGS[name]("384")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_model_shapes(name):
  dim, depth, heads, emim_layers = SIZES[name]
  shapes = _param_shapes(name)
  assert shapes["pos_embed_z/pos_embed"] == (12, 12, dim)
  assert shapes["pos_embed_x/pos_embed"] == (24, 24, dim)
  assert shapes[f"blocks_{depth - 1}/attn/query/kernel"] == (dim, heads, dim // heads)
  assert shapes[f"blocks_{depth - 1}/mlp/fc1/kernel"] == (dim, 4 * dim)
  assert f"blocks_{depth}/norm1/scale" not in shapes
  n = len(emim_layers)
  assert shapes[f"emims_{n - 1}/lang_to_vision/query/kernel"] == (dim, heads, dim // heads)
  assert f"emims_{n}/alpha_ca" not in shapes
  assert shapes["text_tokens_proj/kernel"] == (768, dim)  # BERT-base, as lgtrack_b256
  assert shapes["decoder/search_proj/kernel"] == (dim, 256)
  assert shapes["head/score_conv0/kernel"] == (3, 3, 256, 256)
  out, _ = _abstract(name)
  assert out["score_logits"].shape == (1, 24, 24) and out["boxes"].shape == (1, 4)
  assert out["vision_tokens"].shape == (1, 576, 256) and out["search_kept"].shape == (1, 576)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_vit_file_converts_at_full_width(tmp_path, name):
  """`convert --kind vit` (its Python API) on a random safetensors ViT of the config's width,
  2 blocks deep (the 2-block config, a 1-layer text encoder): grids resampled 14 -> 12 and
  24, heads split as the config says, and the result fits the full config's model."""
  dim, _, heads, _ = SIZES[name]
  config = CONFIGS[name]()
  config.model.depth, config.model.emim.layers, config.model.text.num_layers = 2, (0, 1), 1
  sd = reference.random_vit_state_dict(np.random.default_rng(1), dim, 2, PATCH, MAE_GRID)
  assert {k: v.shape for k, v in sd.items()} == _timm_shapes(dim, 2)  # the full-depth test's
  src = tmp_path / "model.safetensors"
  safetensors.numpy.save_file(sd, str(src))
  dst = str(tmp_path / "converted")
  report = convert.convert("vit", str(src), dst, config)

  assert len(report["loaded"]) == 6 + 2 * 16 and set(report["ignored"]) == {"cls_token"}
  assert report["model"] == {"hidden_size": dim, "depth": 2, "num_heads": heads,
                             "patch_size": PATCH, "template_grid": [12, 12],
                             "search_grid": [24, 24]}
  flat, _ = checkpoint_io.load_converted(dst)
  grid = reference.patch_grid(sd["pos_embed"], 1)
  np.testing.assert_allclose(flat["pos_embed_z/pos_embed"], reference.bicubic(grid, (12, 12)),
                             atol=1e-5)
  np.testing.assert_allclose(flat["pos_embed_x/pos_embed"], reference.bicubic(grid, (24, 24)),
                             atol=1e-5)
  dh = dim // heads  # the last head's features are the last Dh rows of each of q, k, v
  qkv = sd["blocks.1.attn.qkv.weight"]
  np.testing.assert_array_equal(flat["blocks_1/attn/value/kernel"][:, heads - 1],
                                qkv[3 * dim - dh:].T)
  np.testing.assert_array_equal(flat["blocks_1/attn/out/kernel"][heads - 1],
                                sd["blocks.1.attn.proj.weight"][:, dim - dh:].T)

  full = CONFIGS[name]()
  full.model.init.vit = dst
  values, init = pretrained.load_pretrained(full, _param_shapes(name))
  assert len(values) == len(report["loaded"]) and not init.resampled
  assert "blocks_2/norm1/scale" in init.fresh  # beyond the 2 converted blocks


@pytest.mark.parametrize("name", list(CONFIGS))
def test_vit_converts_at_full_depth(name):
  """Every block's timm names (0 .. depth - 1) land on the same block's params, all of them: a
  full-size MAE state dict of pool views through `convert_vit` with the config as it is."""
  dim, depth, heads, _ = SIZES[name]
  shapes = _param_shapes(name)
  sd = _pool_views(_timm_shapes(dim, depth))
  out = vit_lib.convert_vit(sd, CONFIGS[name](), expected=shapes)  # raises on any problem
  assert set(out.loaded) == {p for p in shapes if re.fullmatch(vit_lib.VIT_PARAMS, p)}
  assert len(out.loaded) == 6 + 16 * depth and set(out.ignored) == {"cls_token"}
  for path, key in out.loaded.items():
    block = re.match(r"blocks_(\d+)/", path)
    assert (block is None) == (not key.startswith("blocks.")), (path, key)
    assert block is None or key.startswith(f"blocks.{block.group(1)}."), (path, key)
  last = depth - 1
  np.testing.assert_array_equal(out.params[f"blocks_{last}/mlp/fc2/kernel"],
                                sd[f"blocks.{last}.mlp.fc2.weight"].T)
  np.testing.assert_array_equal(out.params[f"blocks_{last}/attn/query/kernel"],
                                sd[f"blocks.{last}.attn.qkv.weight"][:dim].T.reshape(
                                    dim, heads, dim // heads))
  np.testing.assert_array_equal(out.params[f"blocks_{last}/norm2/bias"],
                                sd[f"blocks.{last}.norm2.bias"])


def test_ostrack_384_checkpoint_loads_whole():
  """An OSTrack-384 checkpoint (grids 12 and 24 of its own, head 768 -> 256 -> ... -> 32) into
  ostrack_b256 at OSTrack-384's inputs: everything loads, the grids as they are; CE ranks by the
  template's token (5, 5) of 12 x 12 (OSTrack's generate_mask_cond: slice(5, 6))."""
  config = _ostrack_384()
  shapes = _param_shapes("ostrack_384")
  head = {}
  channels = (768, 256, 128, 64, 32)
  for branch, out in (("ctr", 1), ("offset", 2), ("size", 2)):
    for k in range(1, 5):
      p, c_in, c_out = f"box_head.conv{k}_{branch}.", channels[k - 1], channels[k]
      head.update({p + "0.weight": (c_out, c_in, 3, 3), p + "0.bias": (c_out,),
                   **{p + f"1.{n}": (c_out,) for n in ("weight", "bias", "running_mean")}})
    head.update({f"box_head.conv5_{branch}.weight": (out, 32, 1, 1),
                 f"box_head.conv5_{branch}.bias": (out,)})
  sd = _pool_views({**_timm_shapes(768, 12, "backbone."), **head,
                    "backbone.pos_embed_z": (1, 144, 768), "backbone.pos_embed_x": (1, 576, 768)})
  for key in [k for k in sd if k.endswith(".1.running_mean")]:  # variances are positive
    sd[key.replace("running_mean", "running_var")] = 0.5 + np.abs(sd[key])
  converted, not_loaded = ostrack.convert_ostrack(sd, config, expected=shapes)
  assert not_loaded == []
  assert set(converted.ignored) == {"backbone.cls_token", "backbone.pos_embed"}
  np.testing.assert_array_equal(converted.params["pos_embed_z/pos_embed"],
                                sd["backbone.pos_embed_z"].reshape(12, 12, 768))
  np.testing.assert_array_equal(converted.params["pos_embed_x/pos_embed"],
                                sd["backbone.pos_embed_x"].reshape(24, 24, 768))

  assert np.flatnonzero(lgtrack.center_token_mask(1, (12, 12))[0]).tolist() == [5 * 12 + 5]
  assert lgtrack.search_tokens_kept(config.model, 576) == {3: 404, 6: 283, 9: 199}
  out, _ = _abstract("ostrack_384")
  assert out["score_logits"].shape == (1, 24, 24) and out["search_kept"].shape == (1, 576)


def test_tracker_step_traces_for_b384():
  """LGTracker's per-frame function over K = 2 slots of 720 x 1280 frames traces for lgtrack_b384
  (24 x 24 score map and Hanning window, 144 template tokens): the tracker built on abstract
  params inside `jax.eval_shape`, its step traced from `step_shapes`, nothing compiled or run."""
  config = lgtrack_b384.get_config()
  model = lgtrack.build_model(config)
  found = {}

  def build_and_trace(params):  # params: tracers of the outer eval_shape
    tracker = LGTracker(model, params, config, tokenize=None)
    args, kwargs = tracker.step_shapes(2, (720, 1280), 8)
    step = functools.partial(tracker._step, **kwargs)  # pylint: disable=protected-access
    found["step"] = jax.eval_shape(step, *args)
    found["traces"] = tracker.traces["step"]
    return jnp.zeros(())

  jax.eval_shape(build_and_trace, _abstract("lgtrack_b384")[1])
  state, boxes, scores = found["step"]
  assert found["traces"] == 1
  assert boxes.shape == (2, 4) and scores.shape == (2,) and state["box"].shape == (2, 4)
  assert state["cond"]["z"].shape == (2, 144, 768)
