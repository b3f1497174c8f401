"""LGTrack: the only model entry point. Composes text encoder, one-stream ViT with EMIM, joint-query
decoder and center head (DESIGN section 2).

Inputs of `LGTrack.__call__` (B = batch):
  template      [B, Hz, Wz, 3] float or uint8, pixel values in [0, 255]
  search        [B, Hx, Wx, 3] same
  template_box  [B, 4] float32 normalised cxcywh of the target in the template crop
  text_ids      [B, L] int32, text_mask [B, L] int32 (1 = real token)
  mode          [B] int32: 0 box only (text masked), 1 language only (template masked),
                2 box + language
  text          optional output of `encode_text` (tracking encodes the sentence once per sequence)
  select_cells  optional: score logits [B, Hf, Wf] float32 -> cells [B, 2] int32 (row, col), the
                cell each box is read at (tracking: the windowed score's peak). The head then
                computes size and offset only there (see `CenterHead`).
Outputs: dict with
  score_logits [B, Hf, Wf], size [B, Hf, Wf, 2], offset [B, Hf, Wf, 2] (Hf = Hx / patch; with
  `select_cells`: size and offset [B, 2] at the selected cells, and cells [B, 2] int32),
  boxes [B, 4] normalised cxcywh in the search crop (at the score maximum, or the selected cells),
  vision_tokens [B, Nx, E] search tokens in the contrastive space, text_embed [B, E] sentence in
  the contrastive space, search_kept [B, Nx] bool (False: dropped by candidate elimination;
  all True without it), has_text [B] bool, logit_scale [] (learnable inverse temperature, log).
`__call__` is `condition` (the per-sequence half: template tokens, text tokens, sentence vector,
EMIM modulation vectors) then `localize` (the per-frame half: search tokens through the ViT with
EMIM, decoder, head). A tracker calls the two apart, `condition` once per sequence.

With `model.template_cache` the template tokens attend only to each other (and, through the
EMIMs, to the text, which then refines itself from the template tokens alone); the search tokens
attend to all. No template token, and no text token, then depends on the search crop:
`condition(cache=True)` runs the template side through the whole ViT once, and `localize` runs
only the search tokens, over each block's cached template keys and values. `__call__` (training)
computes the same function in one pass, template and search together under that block-structured
attention (`Block`), so the tracker runs the function that was trained.

Built without its language branch (`model.language=False`) and decoder (`decoder.num_layers=0`),
and with OSTrack's head (`head.norm='none'`) and CE (`ce.template_range='ctr_point'`), the same
module is OSTrack (configs/ostrack_b256.py): the head then reads the ViT's search tokens, the
text inputs are ignored, and `text_embed`, `logit_scale` and `vision_tokens` are not returned.
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lgtrack_jax.models import head as head_lib
from lgtrack_jax.models import layers
from lgtrack_jax.models.decoder import JointQueryDecoder
from lgtrack_jax.models.emim import EMIM
from lgtrack_jax.models.text_encoder import TEXT_ENCODER_FIELDS, TextEncoder, pool
from lgtrack_jax.models.vit import Block, PatchEmbed, PosEmbed
from lgtrack_jax.ops.partition import constrain_batch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)



def normalize_image(x: jnp.ndarray, dtype) -> jnp.ndarray:
  """[..., 3] pixels in [0, 255] -> ImageNet-normalised `dtype`."""
  x = x.astype(jnp.float32) / 255.0
  return ((x - jnp.array(IMAGENET_MEAN)) / jnp.array(IMAGENET_STD)).astype(dtype)


def box_token_mask(box_cxcywh: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
  """Tokens whose cell centre lies inside the box: [B, 4] normalised cxcywh -> [B, gh * gw] bool.

  A box too small to contain any cell centre selects the cell holding its centre instead.
  """
  gh, gw = grid
  ys = (jnp.arange(gh) + 0.5) / gh
  xs = (jnp.arange(gw) + 0.5) / gw
  cx, cy, w, h = (box_cxcywh[:, i, None] for i in range(4))
  in_x = jnp.abs(xs[None, :] - cx) <= w / 2
  in_y = jnp.abs(ys[None, :] - cy) <= h / 2
  mask = (in_y[:, :, None] & in_x[:, None, :]).reshape(-1, gh * gw)
  row = jnp.clip(jnp.floor(box_cxcywh[:, 1] * gh), 0, gh - 1).astype(jnp.int32)
  col = jnp.clip(jnp.floor(box_cxcywh[:, 0] * gw), 0, gw - 1).astype(jnp.int32)
  centre = jax.nn.one_hot(row * gw + col, gh * gw, dtype=jnp.bool_)
  return jnp.where(mask.any(-1, keepdims=True), mask, centre)


def center_token(grid: tuple[int, int]) -> int:
  """OSTrack's CE_TEMPLATE_RANGE 'CTR_POINT' (`generate_mask_cond`): the index of the one template
  token at row, column (g - 1) // 2 of a g x g grid (3 of 8, 5 of 12, 6 of 14)."""
  gh, gw = grid
  return ((gh - 1) // 2) * gw + (gw - 1) // 2


def center_token_mask(batch: int, grid: tuple[int, int]) -> jnp.ndarray:
  """`center_token` as a mask: [batch, gh * gw] bool."""
  gh, gw = grid
  return jnp.broadcast_to(jnp.arange(gh * gw) == center_token(grid), (batch, gh * gw))


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """x [B, N, D], mask [B, N] -> [B, D] mean over masked tokens (zeros when none)."""
  m = mask.astype(x.dtype)[..., None]
  return (x * m).sum(1) / jnp.maximum(m.sum(1), 1)


def search_tokens_kept(model_config, num_search: int) -> dict[int, int]:
  """{block index: search tokens it keeps} for candidate elimination (`model.ce`): each listed
  block keeps ceil(keep_ratio * the search tokens it receives); blocks where that is all of them
  are left out. Empty when `ce.layers` is ()."""
  ce = model_config.ce
  if any(not 0 <= i < model_config.depth for i in ce.layers):
    raise ValueError(f"model.ce.layers={ce.layers} must index ViT blocks 0..{model_config.depth - 1}")
  if ce.layers and not 0 < ce.keep_ratio <= 1:
    raise ValueError(f"model.ce.keep_ratio={ce.keep_ratio} must be in (0, 1]")
  keep, n = {}, num_search
  for i in sorted(set(ce.layers)):
    if math.ceil(ce.keep_ratio * n) < n:  # a block that would keep every token is a plain block
      n = math.ceil(ce.keep_ratio * n)
      keep[i] = n
  return keep


def scatter_tokens(x: jnp.ndarray, positions: jnp.ndarray, num: int
                   ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Kept tokens back onto the full grid: x [B, K, D] at positions [B, K] int32 (distinct, in
  0..num-1) -> ([B, num, D] with zeros elsewhere, [B, num] bool: which positions were filled).
  The identity (no copy) when K == num and positions is arange, i.e. nothing was dropped."""
  b, k, _ = x.shape
  if k == num:  # no elimination happened: positions are arange(num)
    return x, jnp.ones((b, num), jnp.bool_)
  rows = jnp.arange(b)[:, None]
  full = jnp.zeros((b, num, x.shape[-1]), x.dtype).at[rows, positions].set(x)
  kept = jnp.zeros((b, num), jnp.bool_).at[rows, positions].set(True)
  return full, kept


class LGTrack(nn.Module):
  """See the module docstring. `config` is the frozen `config.model`; grids in patches."""

  config: ml_collections.FrozenConfigDict
  template_grid: tuple[int, int]
  search_grid: tuple[int, int]
  # The implementation of every cross-attention (`CrossAttention.kernel`): None, the clear form
  # (training); the tracker passes its own (tracking/kernels.py, `eval.cross_attention`).
  cross_attention_kernel: Callable | None = None

  def setup(self):
    c = self.config
    dtype = jnp.dtype(c.dtype)
    d = c.hidden_size
    if not c.language and c.emim.layers:
      raise ValueError(f"model.language=False has no text for EMIM: set model.emim.layers=() "
                       f"(it is {c.emim.layers})")
    if c.ce.template_range not in ("box", "ctr_point"):
      raise ValueError(f"model.ce.template_range={c.ce.template_range!r}: expected 'box' or "
                       "'ctr_point'")
    self.patch_embed = PatchEmbed(c.patch_size, d, dtype=dtype, conv=c.conv)
    self.pos_embed_z = PosEmbed(self.template_grid, d)
    self.pos_embed_x = PosEmbed(self.search_grid, d)
    if c.language:
      self.text_encoder = TextEncoder(**{k: c.text[k] for k in TEXT_ENCODER_FIELDS}, dtype=dtype)
      # Stands in for the template tokens in mode 1 (no box: the template image is meaningless).
      self.null_template = self.param("null_template", nn.initializers.normal(0.02), (d,))
      self.text_tokens_proj = layers.Dense(d, dtype)
      self.text_global_proj = layers.Dense(d, dtype)
    block = nn.remat(Block) if c.remat else Block
    keep = search_tokens_kept(c, self.search_grid[0] * self.search_grid[1])
    nz = self.template_grid[0] * self.template_grid[1]
    self.blocks = [block(c.num_heads, c.mlp_ratio, dtype=dtype, attention=c.attention,
                         num_template=nz, keep_search=keep.get(i, 0),
                         template_cache=c.template_cache)
                   for i in range(c.depth)]
    if any(not 0 <= i < c.depth for i in c.emim.layers):
      raise ValueError(f"model.emim.layers={c.emim.layers} must index ViT blocks 0..{c.depth - 1}")
    self.emims = [EMIM(c.emim.num_heads, d, c.emim.mlp_ratio, c.emim.bidirectional,
                       c.emim.global_modulation, dtype=dtype,
                       cross_attention_kernel=self.cross_attention_kernel)
                  for _ in c.emim.layers]
    self.norm = nn.LayerNorm(epsilon=1e-6, dtype=dtype)
    if c.decoder.num_layers:
      self.decoder = JointQueryDecoder(c.decoder.num_layers, c.decoder.hidden_size,
                                       c.decoder.num_heads, c.decoder.num_queries,
                                       c.decoder.attend_text, dtype=dtype,
                                       cross_attention_kernel=self.cross_attention_kernel)
    self.head = head_lib.CenterHead(c.head.channels, c.head.num_convs, dtype=dtype,
                                    conv=c.conv, taper=c.head.taper, norm=c.head.norm)
    if c.language:
      self.vision_embed_proj = layers.Dense(c.embed_dim, dtype)
      self.text_embed_proj = layers.Dense(c.embed_dim, dtype)
      self.logit_scale = self.param("logit_scale", nn.initializers.constant(
          math.log(1.0 / c.temperature_init)), ())

  def encode_text(self, text_ids: jnp.ndarray, text_mask: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """ids/mask [B, L] -> {'tokens': [B, L, Dt] deep text features, 'sentence': [B, Dt]}.

    Without a language branch: zeros [B, L, 1] and [B, 1] (nothing reads them)."""
    if not self.config.language:
      zeros = jnp.zeros((*text_ids.shape, 1), jnp.dtype(self.config.dtype))
      return {"tokens": zeros, "sentence": zeros[:, 0]}
    tokens = self.text_encoder(text_ids, text_mask)
    if not self.config.text.trainable:
      tokens = jax.lax.stop_gradient(tokens)
    return {"tokens": tokens, "sentence": pool(tokens, text_mask, self.config.text.pool)}

  def condition(self, template, template_box, text_mask, mode, text, text_keys: bool = False,
                cache: bool = False) -> dict[str, jnp.ndarray]:
    """The per-sequence half of `__call__`: what the template and the sentence contribute, which a
    tracker computes once per sequence and keeps (the template is cropped once, and the sentence
    encoded once by `encode_text`).

    template [B, Hz, Wz, 3], template_box [B, 4], text_mask [B, L] int32, mode [B] int32, text the
    output of `encode_text`. Returns
      z [B, Nz, D] template tokens (patch and position embedded; `null_template` in mode 1),
      z_mask [B, Nz] bool the target's template tokens (all in mode 1),
      t [B, L, D] text tokens, t_mask [B, L] int32 (all 0 when the sample has no text),
      g_l [B, D] the sentence (zeros without text), has_text [B] bool,
      mods: each EMIM's modulation vector [B, D] (`EMIM.modulation_vector`; None without),
      with `text_keys` (and EMIMs) also
      keys: the first EMIM's `text_keys(t)` (its language-to-vision attention's text side, which
        `localize` then takes instead of recomputing it from t on every frame).
    With `cache` (needs `model.template_cache`) the template and the text run through the whole
    ViT here, once, since with that option nothing they compute depends on the search crop; then
    `z` and `keys` give way to what each frame reads of them (`_template_pass`):
      t [B, L, D] the text after the last EMIM (the decoder's), not the projected one,
      emim_keys: each EMIM's `text_keys` of the text it meets,
      kv: each block's template {'k', 'v' [B, Nz, H, Dh]}, and for a candidate-elimination
        block 'q' [B, Nq, H, Dh] the target's template queries, weighted by
      rank_mask [B, Nq] bool (z_mask; with `ce.template_range` 'ctr_point', Nq = 1),
      g_v [B, D] the decoder's global vision feature (with a decoder).
    Every entry is per token or per sample, so a prefix of t / t_mask (and
    `cross_attention.cut_keys` of keys, emim_keys) is the same as conditioning on the shorter
    text (text tokens never attend to each other here).
    """
    c = self.config
    dtype = jnp.dtype(c.dtype)
    if cache and not c.template_cache:
      raise ValueError("condition(cache=True) needs model.template_cache=True: without it the "
                       "template tokens depend on the search crop")
    has_text = (mode != 0) & (text_mask.sum(-1) > 0) & c.language
    gate = has_text.astype(dtype)[:, None]
    z, z_grid = self.patch_embed(normalize_image(template, dtype))
    no_template = (mode == 1)[:, None, None] & c.language
    if c.language:
      z = jnp.where(no_template, self.null_template.astype(dtype), z)
      g_l = self.text_global_proj(text["sentence"].astype(dtype)) * gate
      t = self.text_tokens_proj(text["tokens"].astype(dtype))
    else:
      g_l = jnp.zeros((z.shape[0], c.hidden_size), dtype)
      t = jnp.zeros((*text_mask.shape, c.hidden_size), dtype)
    keys = {"keys": self.emims[0].text_keys(t)} if (text_keys or cache) and self.emims else {}
    cond = {
        "z": z + self.pos_embed_z(z_grid).astype(dtype),
        # The target's template tokens: inside the template box (all of them in mode 1).
        "z_mask": box_token_mask(template_box, z_grid) | no_template[:, :, 0],
        "t": t,
        "t_mask": text_mask * has_text[:, None].astype(text_mask.dtype),
        "g_l": g_l,
        "has_text": has_text,
        "mods": [emim.modulation_vector(g_l) for emim in self.emims],
        **keys,
    }
    return self._template_pass(cond) if cache else cond

  def _template_pass(self, cond: dict) -> dict:
    """`condition`'s entries with `cache`: the template tokens and the text through every EMIM
    and block (`Block.template`), keeping what the search tokens read of them on each frame."""
    c = self.config
    z, t, z_mask = cond["z"], cond["t"], cond["z_mask"]
    if c.ce.template_range == "box":
      rank_rows, rank_mask = slice(None), z_mask
    else:  # 'ctr_point': one query; the others have weight 0 in the ranking
      at = center_token(self.template_grid)
      rank_rows, rank_mask = slice(at, at + 1), jnp.ones((z.shape[0], 1), jnp.bool_)
    emim_at = {layer: k for k, layer in enumerate(c.emim.layers)}
    emim_keys, kv = [], []
    for i, blk in enumerate(self.blocks):
      if i in emim_at:
        k = emim_at[i]
        keys = cond["keys"] if k == 0 else self.emims[k].text_keys(t)
        emim_keys.append(keys)
        z, t = self.emims[k](z, t, cond["t_mask"], cond["mods"][k], cond["has_text"], keys=keys)
      z, entry = blk.template(z)
      kv.append({"k": entry["k"], "v": entry["v"],
                 **({"q": entry["q"][:, rank_rows]} if blk.keep_search else {})})
    out = {key: cond[key] for key in ("z_mask", "t_mask", "g_l", "has_text", "mods")}
    out.update(t=t, emim_keys=emim_keys, kv=kv, rank_mask=rank_mask)
    if c.decoder.num_layers:
      out["g_v"] = masked_mean(self.norm(z), z_mask)
    return out

  def backbone(self, cond: dict[str, jnp.ndarray], search) -> dict[str, jnp.ndarray]:
    """The ViT with EMIMs over `condition`'s output and search [B, Hx, Wx, 3] ->
      x [B, Nx, D] search tokens after the final norm (zeros where candidate elimination dropped
        them), search_kept [B, Nx] bool, x_grid (Hf, Wf), t [B, L, D] the text after the last
        EMIM, and, without a cached template, z [B, Nz, D] the template tokens after the final
        norm (with one: g_v [B, D], the cached global vision feature, where there is a decoder).
    With a cached template (`condition(cache=True)`) only the search tokens run, over each
    block's cached template keys and values (`Block.search`)."""
    c = self.config
    dtype = jnp.dtype(c.dtype)
    t, t_mask = cond["t"], cond["t_mask"]
    x, x_grid = self.patch_embed(normalize_image(search, dtype))
    x = x + self.pos_embed_x(x_grid).astype(dtype)
    nx = x.shape[1]
    cached = "kv" in cond
    if cached:
      v, nz, ce_mask = x, 0, cond["rank_mask"]
    else:
      z, z_mask = cond["z"], cond["z_mask"]
      nz = z.shape[1]
      v = jnp.concatenate([z, x], axis=1)
      ce_mask = z_mask if c.ce.template_range == "box" else center_token_mask(z_mask.shape[0],
                                                                                self.template_grid)
    v = constrain_batch(v)
    # With template_cache the text refines itself from the template tokens alone.
    text_reads = nz if c.template_cache else None
    emim_at = {layer: k for k, layer in enumerate(c.emim.layers)}
    # Candidate elimination: positions (in the search grid) of the search tokens still in v.
    search_at = jnp.broadcast_to(jnp.arange(nx, dtype=jnp.int32), (v.shape[0], nx))
    for i, blk in enumerate(self.blocks):
      if i in emim_at:
        k, emim = emim_at[i], self.emims[emim_at[i]]
        if cached:  # the text is the template's, done: only its way into the search tokens
          v = emim.language_to_vision(v, None, t_mask, cond["has_text"], cond["emim_keys"][k])
          v = emim.modulate(v, cond["mods"][k], cond["has_text"])
        else:
          v, t = emim(v, t, t_mask, cond["mods"][k], cond["has_text"],
                      keys=cond.get("keys") if k == 0 else None, text_reads=text_reads)
      out = blk.search(v, cond["kv"][i], ce_mask) if cached else blk(v, ce_mask)
      if blk.keep_search:
        v, kept = out
        search_at = jnp.take_along_axis(search_at, kept, axis=1)
      else:
        v = out
      v = constrain_batch(v)
    v = self.norm(v)
    # Dropped search tokens come back as zeros at their grid positions (OSTrack's recovery).
    x, search_kept = scatter_tokens(v[:, nz:], search_at, nx)
    out = {"x": x, "search_kept": search_kept, "x_grid": x_grid, "t": t}
    if cached:
      out.update({"g_v": cond["g_v"]} if "g_v" in cond else {})
    else:
      out["z"] = v[:, :nz]
    return out

  def localize(self, cond: dict[str, jnp.ndarray], search, select_cells=None
               ) -> dict[str, jnp.ndarray]:
    """The per-frame half of `__call__`: search [B, Hx, Wx, 3] under `condition`'s output (with
    or without a cached template) -> score_logits, size, offset, boxes, (cells), vision_tokens,
    search_kept (module docstring)."""
    c = self.config
    feats = self.backbone(cond, search)
    x, search_kept, x_grid, t = feats["x"], feats["search_kept"], feats["x_grid"], feats["t"]

    if c.decoder.num_layers:
      # Global vision feature: the target's template tokens.
      g_v = feats["g_v"] if "g_v" in feats else masked_mean(feats["z"], cond["z_mask"])
      _, fx = self.decoder(g_v, cond["g_l"], x, t, cond["t_mask"], search_kept)
      fx = fx * search_kept[..., None].astype(fx.dtype)
    else:  # OSTrack: the head reads the ViT's search tokens (dropped ones are zeros already)
      fx = x
    fmap = fx.reshape(fx.shape[0], *x_grid, fx.shape[-1])
    if select_cells is None:
      score_logits, size, offset = self.head(fmap)
      boxes, at = head_lib.decode_boxes(score_logits, size, offset), {}
    else:
      score_logits, size, offset, cells = self.head(fmap, select_cells)
      boxes, at = head_lib.box_at_cells(size, offset, cells, x_grid), {"cells": cells}
    out = {
        "score_logits": score_logits,
        "size": size,
        "offset": offset,
        "boxes": boxes,
        **at,
        "search_kept": search_kept,
    }
    if c.language:
      out["vision_tokens"] = self.vision_embed_proj(x).astype(jnp.float32)
    return out

  def __call__(self, template, search, template_box, text_ids, text_mask, mode, text=None,
               select_cells=None):
    if text is None:
      text = self.encode_text(text_ids, text_mask)
    cond = self.condition(template, template_box, text_mask, mode, text)
    out = {**self.localize(cond, search, select_cells), "has_text": cond["has_text"]}
    if self.config.language:
      sentence = text["sentence"].astype(jnp.dtype(self.config.dtype))
      out["text_embed"] = self.text_embed_proj(sentence).astype(jnp.float32)
      out["logit_scale"] = self.logit_scale
    return out


def build_model(config: ml_collections.ConfigDict) -> LGTrack:
  """LGTrack for a full experiment config (uses `config.model`, `config.data` crop sizes)."""
  p = config.model.patch_size
  for key in ("template_size", "search_size"):
    if config.data[key] % p:
      raise ValueError(f"data.{key}={config.data[key]} is not a multiple of patch_size={p}")
  model_cfg = ml_collections.FrozenConfigDict(
      {**config.model.to_dict(), "temperature_init": config.loss.temperature_init})
  zg = config.data.template_size // p
  xg = config.data.search_size // p
  return LGTrack(model_cfg, (zg, zg), (xg, xg))


def param_shapes(config: ml_collections.ConfigDict) -> dict:
  """The params of `build_model(config)` as a tree of jax.ShapeDtypeStruct (abstract: no FLOPs,
  no compilation). Every caller that needs the parameter layout of a config starts here."""
  model = build_model(config)
  return jax.eval_shape(model.init, jax.random.key(0), **dummy_inputs(config))["params"]


def dummy_inputs(config: ml_collections.ConfigDict, batch: int = 1) -> dict[str, jnp.ndarray]:
  """Zero inputs with the right shapes and dtypes, for `init` and `eval_shape`."""
  zs, xs, l = config.data.template_size, config.data.search_size, config.model.text.max_len
  return {
      "template": jnp.zeros((batch, zs, zs, 3), jnp.uint8),
      "search": jnp.zeros((batch, xs, xs, 3), jnp.uint8),
      "template_box": jnp.full((batch, 4), 0.5, jnp.float32),
      "text_ids": jnp.zeros((batch, l), jnp.int32),
      "text_mask": jnp.ones((batch, l), jnp.int32),
      "mode": jnp.full((batch,), 2, jnp.int32),
  }
