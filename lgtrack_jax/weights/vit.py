"""timm / MAE / DeiT ViT checkpoints -> our one-stream ViT (patch embed, blocks, norm, posembs).

Sources: a `*.safetensors` file (timm's `model.safetensors`), or a PyTorch file (MAE's
`mae_pretrain_vit_base.pth` = {'model': ...}, DeiT's {'model': ...}, timm's `pytorch_model.bin`)
read with `torch.load(weights_only=True)`. ViT-B/16 and ViT-L/16 (and any other depth / width
whose head count the config gives) load; the config's `model.{hidden_size,depth,num_heads,
patch_size}` must match the checkpoint, and every disagreement is listed in one error.

Layout changes (torch -> ours, D hidden, H heads, Dh = D / H, p patch):
  patch_embed.proj.weight [D, 3, p, p]     -> patch_embed/proj/kernel [p, p, 3, D]
  pos_embed [1, P + g*g, D]                -> pos_embed_z/pos_embed [gz, gz, D] and
                                              pos_embed_x/pos_embed [gx, gx, D]: the P prefix
                                              (class / distillation token) entries are dropped,
                                              the grid is resampled bicubically (as OSTrack)
  blocks.i.attn.qkv.weight [3D, D]         -> blocks_i/attn/{query,key,value}/kernel [D, H, Dh]
  blocks.i.attn.qkv.bias [3D]              -> blocks_i/attn/{query,key,value}/bias [H, Dh]
  blocks.i.attn.proj.weight [D, D]         -> blocks_i/attn/out/kernel [H, Dh, D]
  blocks.i.mlp.fc{1,2}.weight [out, in]    -> blocks_i/mlp/fc{1,2}/kernel [in, out]
  *.norm*.weight / bias                    -> */scale, */bias
The class token, DeiT's distillation token and heads, MAE's decoder and mask token have no
counterpart: they are listed in the report as ignored.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np
from flax import traverse_util

from lgtrack_jax.weights import checkpoint_io, posemb
from lgtrack_jax.weights.key_table import (
  Conversion,
  Rule,
  apply_table,
  conv_kernel,
  linear_kernel,
  same,
)

# Our ViT's params: what a ViT checkpoint must provide in full.
VIT_PARAMS = r"(?:patch_embed|pos_embed_z|pos_embed_x|norm|blocks_\d+)/.*"


@dataclasses.dataclass(frozen=True)
class VitContext:
  """What the transforms need beyond the tensors.

  num_heads: H of the target model (not recoverable from the weights).
  template_grid, search_grid: (rows, cols) in patches of our two position-embedding grids.
  num_prefix_tokens: prefix entries (class, distillation token) at the start of `pos_embed`.
  """

  num_heads: int
  template_grid: tuple[int, int]
  search_grid: tuple[int, int]
  num_prefix_tokens: int = 1


def _heads(x: np.ndarray, num_heads: int, axis: int) -> tuple[int, int]:
  d = x.shape[axis]
  if d % num_heads:
    raise ValueError(f"{d} features do not split into {num_heads} heads (model.num_heads)")
  return num_heads, d // num_heads


def _qkv_kernel(x: np.ndarray, ctx: VitContext) -> tuple[np.ndarray, ...]:
  """[3D, D] (rows: q, k, v) -> 3 x [D, H, Dh]."""
  if x.ndim != 2 or x.shape[0] != 3 * x.shape[1]:
    raise ValueError(f"a fused qkv weight is [3D, D], this one {tuple(x.shape)}")
  h, dh = _heads(x, ctx.num_heads, 1)
  return tuple(w.T.reshape(x.shape[1], h, dh) for w in np.split(x, 3, axis=0))


def _qkv_bias(x: np.ndarray, ctx: VitContext) -> tuple[np.ndarray, ...]:
  """[3D] -> 3 x [H, Dh]."""
  if x.ndim != 1 or x.shape[0] % 3:
    raise ValueError(f"a fused qkv bias is [3D], this one {tuple(x.shape)}")
  h, dh = _heads(x[: x.shape[0] // 3], ctx.num_heads, 0)
  return tuple(b.reshape(h, dh) for b in np.split(x, 3))


def _out_kernel(x: np.ndarray, ctx: VitContext) -> np.ndarray:
  """Attention output projection [D, Dh * H] (torch [out, in]) -> [H, Dh, D]."""
  if x.ndim != 2:
    raise ValueError(f"a linear weight has 2 dimensions, this one {tuple(x.shape)}")
  h, dh = _heads(x, ctx.num_heads, 1)
  return x.T.reshape(h, dh, x.shape[0])


def _pos_embed(x: np.ndarray, ctx: VitContext) -> tuple[np.ndarray, np.ndarray]:
  """[1, P + g*g, D] -> ([gz, gz, D], [gx, gx, D]): prefix dropped, grid resampled to each."""
  return (posemb.to_grid(x, ctx.template_grid, ctx.num_prefix_tokens),
          posemb.to_grid(x, ctx.search_grid, ctx.num_prefix_tokens))


_B = r"blocks\.(\d+)\."

# Patch embedding, blocks and final norm: the same names in timm, MAE, DeiT and OSTrack's backbone.
BACKBONE_RULES: tuple[Rule, ...] = (
    Rule(r"patch_embed\.proj\.weight", ("patch_embed/proj/kernel",), conv_kernel),
    Rule(r"patch_embed\.proj\.bias", ("patch_embed/proj/bias",), same),
    Rule(_B + r"norm(1|2)\.weight", (r"blocks_\1/norm\2/scale",), same),
    Rule(_B + r"norm(1|2)\.bias", (r"blocks_\1/norm\2/bias",), same),
    Rule(_B + r"attn\.qkv\.weight",
         tuple(rf"blocks_\1/attn/{n}/kernel" for n in ("query", "key", "value")), _qkv_kernel),
    Rule(_B + r"attn\.qkv\.bias",
         tuple(rf"blocks_\1/attn/{n}/bias" for n in ("query", "key", "value")), _qkv_bias),
    Rule(_B + r"attn\.proj\.weight", (r"blocks_\1/attn/out/kernel",), _out_kernel),
    Rule(_B + r"attn\.proj\.bias", (r"blocks_\1/attn/out/bias",), same),
    Rule(_B + r"mlp\.(fc1|fc2)\.weight", (r"blocks_\1/mlp/\2/kernel",), linear_kernel),
    Rule(_B + r"mlp\.(fc1|fc2)\.bias", (r"blocks_\1/mlp/\2/bias",), same),
    Rule(r"norm\.weight", ("norm/scale",), same),
    Rule(r"norm\.bias", ("norm/bias",), same),
)

KEY_TABLE: tuple[Rule, ...] = (
    Rule(r"pos_embed", ("pos_embed_z/pos_embed", "pos_embed_x/pos_embed"), _pos_embed),
) + BACKBONE_RULES

# (pattern, reason): present in common ViT checkpoints, no counterpart in the tracker.
IGNORED: tuple[tuple[str, str], ...] = (
    (r"cls_token", "class token: a one-stream tracker has none (its position is dropped too)"),
    (r"dist_token", "DeiT distillation token: no counterpart (its position is dropped too)"),
    (r"mask_token|decoder_.*", "MAE decoder: used in pretraining only"),
    (r"head\..*|head_dist\..*", "image classification head"),
    (r"fc_norm\..*", "norm of the pooled image feature (classification only)"),
)


def model_param_shapes(config: ml_collections.ConfigDict) -> dict[str, tuple[int, ...]]:
  """{our '/'-joined param path: shape} of `lgtrack.build_model(config)` (abstract, no FLOPs)."""
  from lgtrack_jax.models import lgtrack  # pylint: disable=import-outside-toplevel
  shapes = lgtrack.param_shapes(config)
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def grids(config: ml_collections.ConfigDict) -> tuple[tuple[int, int], tuple[int, int]]:
  """(template grid, search grid) in patches."""
  p = config.model.patch_size
  zg, xg = config.data.template_size // p, config.data.search_size // p
  return (zg, zg), (xg, xg)


def model_summary(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config values a converted ViT depends on (stored in report.json)."""
  z, x = grids(config)
  m = config.model
  return {"hidden_size": m.hidden_size, "depth": m.depth, "num_heads": m.num_heads,
          "patch_size": m.patch_size, "template_grid": list(z), "search_grid": list(x)}


def convert_vit(tensors: dict[str, np.ndarray], config: ml_collections.ConfigDict,
                expected: dict[str, tuple[int, ...]] | None = None) -> Conversion:
  """A timm/MAE/DeiT state dict (numpy, torch layout) -> our ViT params (flat, '/'-joined).

  Args:
    tensors: {source key: array}, already unwrapped (see `checkpoint_io.read_state_dict`).
    config: the experiment config (model sizes, crop sizes -> position grids).
    expected: `model_param_shapes(config)`, when the caller has it already.

  Returns:
    A `Conversion` with no problems: params {path: float32 array} for every ViT param.

  Raises:
    ValueError: one error listing every missing tensor, bad shape and unrecognised tensor.
  """
  expected = model_param_shapes(config) if expected is None else expected
  z, x = grids(config)
  prefix = int("cls_token" in tensors) + int("dist_token" in tensors)
  ctx = VitContext(config.model.num_heads, z, x, prefix)
  out = apply_table(tensors, KEY_TABLE, IGNORED, expected, required=VIT_PARAMS, ctx=ctx)
  out.raise_if_problems("ViT checkpoint")
  return out


def convert_vit_file(path: str, config: ml_collections.ConfigDict
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """A ViT checkpoint file -> ({our path: float32 array}, report dict for report.json)."""
  out = convert_vit(checkpoint_io.read_state_dict(path), config)
  report = {"kind": "vit", "source": os.path.abspath(path), "model": model_summary(config),
            "loaded": out.loaded, "ignored": out.ignored, "not_loaded": []}
  return out.params, report
