"""A released OSTrack checkpoint -> our backbone, position embeddings and what fits of the head.

OSTrack (`OSTrack_ep0300.pth.tar`) saves {'net': state_dict, ...}; the state dict holds
  backbone.patch_embed.proj.*, backbone.blocks.N.*, backbone.norm.*   ViT (timm names)
  backbone.pos_embed_z [1, Nz, D], backbone.pos_embed_x [1, Nx, D]    its tracking grids
  backbone.pos_embed, backbone.cls_token                              pretraining leftovers
  box_head.conv{1..4}_{ctr,offset,size}.{0: Conv2d, 1: BatchNorm2d}   center head, channels
  box_head.conv5_{ctr,offset,size}                                    C -> C/2 -> C/4 -> C/8 -> 1|2
The backbone and both position embeddings map onto ours (grids resampled bicubically when our
crop sizes differ) and must be complete. The heads differ: ours has `num_convs` conv + LayerNorm
+ ReLU layers after the joint-query decoder (input `decoder.hidden_size`, not the ViT's D), of
`model.head.channels` halved at each layer with `model.head.taper` (OSTrack's C -> C/2 -> ...).
Each OSTrack conv is loaded, with its BatchNorm folded in (eval mode), where our conv of the same
branch and depth has the same shape: with lgtrack_b256's tapered head, conv2-4 and conv5 (conv1
reads 768 channels, ours 256); with configs/ostrack_b256.py (OSTrack's head on the ViT tokens,
`head.norm='none'`) every one of them, so the whole checkpoint loads. Everything else is listed
in the report ('ignored' with the reason, 'not_loaded' for our params left at their fresh init,
the text encoder aside).
"""

from __future__ import annotations

import os
import re
from typing import Any

import ml_collections
import numpy as np

from lgtrack_jax.weights import checkpoint_io, posemb
from lgtrack_jax.weights import vit as vit_lib
from lgtrack_jax.weights.key_table import Conversion, Rule, apply_table, conv_kernel, same

# OSTrack branch -> ours.
_BRANCHES = {"ctr": "score", "offset": "offset", "size": "size"}
_BN_EPS = 1e-5  # torch BatchNorm2d's and OSTrack's FrozenBatchNorm2d's
_BN_PARTS = ("weight", "bias", "running_mean", "running_var")
_HEAD_CONV = re.compile(r"box_head\.(conv[1-4]_(?:ctr|offset|size))\.0\.weight")


def _grid_z(x: np.ndarray, ctx: vit_lib.VitContext) -> np.ndarray:
  return posemb.to_grid(x, ctx.template_grid, 0)


def _grid_x(x: np.ndarray, ctx: vit_lib.VitContext) -> np.ndarray:
  return posemb.to_grid(x, ctx.search_grid, 0)


def _head_rules() -> tuple[Rule, ...]:
  rules = []
  for theirs, ours in _BRANCHES.items():
    for k in range(1, 5):
      for part, fn in (("weight", conv_kernel), ("bias", same)):
        name = "kernel" if part == "weight" else "bias"
        rules.append(Rule(rf"box_head\.conv{k}_{theirs}\.0\.{part}",
                          (f"head/{ours}_conv{k - 1}/{name}",), fn, best_effort=True))
    rules.append(Rule(rf"box_head\.conv5_{theirs}\.weight", (f"head/{ours}_out/kernel",),
                      conv_kernel, best_effort=True))
    rules.append(Rule(rf"box_head\.conv5_{theirs}\.bias", (f"head/{ours}_out/bias",), same,
                      best_effort=True))
  return tuple(rules)


KEY_TABLE: tuple[Rule, ...] = (
    Rule(r"backbone\.pos_embed_z", ("pos_embed_z/pos_embed",), _grid_z),
    Rule(r"backbone\.pos_embed_x", ("pos_embed_x/pos_embed",), _grid_x),
) + tuple(Rule(r"backbone\." + r.pattern, r.targets, r.transform)
          for r in vit_lib.BACKBONE_RULES) + _head_rules()

IGNORED: tuple[tuple[str, str], ...] = (
    (r"backbone\.pos_embed", ("pretraining position embedding: OSTrack's own pos_embed_z and "
                              "pos_embed_x are loaded instead")),
    (r"backbone\.cls_pos_embed", "class-token position: a one-stream tracker has no class token"),
) + tuple((r"backbone\." + p, why) for p, why in vit_lib.IGNORED) + (
    (r"box_head\.(?!conv[1-5]_(?:ctr|offset|size)\.).*",
     "OSTrack head part with no counterpart in our center head"),
)

# What the checkpoint must provide in full: the ViT. The head is best effort.
REQUIRED = vit_lib.VIT_PARAMS


def fold_batchnorm(tensors: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Folds each head conv's BatchNorm (eval mode) into the conv's weight and bias.

  conv -> BN computes W x + b -> g (W x + b - mean) / sqrt(var + eps) + beta, one affine map:
  W' = W s, b' = (b - mean) s + beta with s = g / sqrt(var + eps) per output channel.

  Returns:
    (tensors with `box_head.convK_B.0.{weight,bias}` folded and the `.1.*` BatchNorm tensors
    removed, {removed key: reason}).
  """
  out = dict(tensors)
  folded: dict[str, str] = {}
  for key, weight in tensors.items():
    match = _HEAD_CONV.fullmatch(key)
    if not match:
      continue
    base = f"box_head.{match.group(1)}"
    bn = {p: tensors.get(f"{base}.1.{p}") for p in _BN_PARTS}
    if any(v is None for v in bn.values()):
      continue
    w = np.asarray(weight, np.float64)
    b = np.asarray(tensors.get(f"{base}.0.bias", np.zeros(w.shape[0])), np.float64)
    scale = np.asarray(bn["weight"], np.float64) / np.sqrt(
        np.asarray(bn["running_var"], np.float64) + _BN_EPS)
    out[key] = (w * scale[:, None, None, None]).astype(np.float32)
    out[f"{base}.0.bias"] = ((b - bn["running_mean"]) * scale + bn["bias"]).astype(np.float32)
    for p in (*_BN_PARTS, "num_batches_tracked"):
      if f"{base}.1.{p}" in out:
        del out[f"{base}.1.{p}"]
        folded[f"{base}.1.{p}"] = f"BatchNorm folded into {base}.0 (eval mode)"
  return out, folded


def convert_ostrack(tensors: dict[str, np.ndarray], config: ml_collections.ConfigDict,
                    expected: dict[str, tuple[int, ...]] | None = None
                    ) -> tuple[Conversion, list[str]]:
  """An OSTrack state dict (numpy, torch layout, `net` already unwrapped) -> our params.

  Returns:
    (conversion, not_loaded): `conversion.params` holds the backbone, both position embeddings
    and the head convs that fit; `conversion.ignored` every source tensor left out, with the
    reason; `not_loaded` our params (the text encoder's aside) that keep their fresh init.

  Raises:
    ValueError: one error listing every missing or mis-shaped backbone tensor and every
      unrecognised tensor.
  """
  expected = vit_lib.model_param_shapes(config) if expected is None else expected
  z, x = vit_lib.grids(config)
  tensors, folded = fold_batchnorm(tensors)
  ctx = vit_lib.VitContext(config.model.num_heads, z, x, 0)
  out = apply_table(tensors, KEY_TABLE, IGNORED, expected, required=REQUIRED, ctx=ctx)
  out.raise_if_problems("OSTrack checkpoint")
  # A conv loads whole or not at all: a bias that fits by chance (e.g. conv5's [2]) without its
  # kernel would be meaningless.
  for path in [p for p in out.loaded if p.startswith("head/")]:
    layer, part = path.rsplit("/", 1)
    partner = f"{layer}/{'bias' if part == 'kernel' else 'kernel'}"
    if partner not in out.loaded:
      key = out.loaded.pop(path)
      del out.params[path]
      out.ignored[key] = f"no counterpart: {partner} does not fit, so {path} is not loaded either"
  for path, key in out.loaded.items():
    if key.rsplit(".", 2)[0] + ".1.weight" in folded:
      out.loaded[path] = f"{key} (BatchNorm folded in)"
  # A BatchNorm counts as loaded where its conv is, and as ignored with it otherwise.
  loaded_keys = set(out.loaded.values())
  for key, how in folded.items():
    conv = key.rsplit(".", 2)[0] + ".0.weight"
    if f"{conv} (BatchNorm folded in)" in loaded_keys:
      out.folded[key] = how
    else:
      out.ignored[key] = f"{how}, which is not loaded: {out.ignored.get(conv, 'no counterpart')}"
  # The text encoder comes from its own checkpoint (model.text.checkpoint); everything else of
  # ours that OSTrack does not give keeps its fresh init.
  not_loaded = sorted(p for p in expected
                      if not p.startswith("text_encoder/") and p not in out.loaded)
  return out, not_loaded


def convert_ostrack_file(path: str, config: ml_collections.ConfigDict
                         ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """An OSTrack checkpoint file -> ({our path: float32 array}, report dict for report.json)."""
  out, not_loaded = convert_ostrack(checkpoint_io.read_state_dict(path), config)
  report = {"kind": "ostrack", "source": os.path.abspath(path),
            "model": vit_lib.model_summary(config), "loaded": out.loaded,
            "folded": out.folded, "ignored": out.ignored, "not_loaded": not_loaded}
  return out.params, report
