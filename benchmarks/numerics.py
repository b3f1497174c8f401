"""Numerics of the speed switches: LGTrack's forward under reduced precision against float32 at
'highest' matmul precision, on the same device, random weights and random inputs.

  python benchmarks/numerics.py --config configs/lgtrack_b256.py [--batch 8]
  python benchmarks/numerics.py --config configs/tiny.py --variants bfloat16:matmul:matmul
  python benchmarks/numerics.py --config configs/tiny.py --checkpoint runs/demo/train

One JSON line per variant: relative L2 error of each output (score logits, size, offset, boxes,
vision tokens, text embedding), whether every output is finite, the share of score maps that peak
at the same cell, the largest box difference in search-crop pixels, and ms per forward. Variants
are DTYPE:ATTENTION:CONV (default: float32 at default precision, which on GPUs means TF32
products, then bf16 with every attention kernel the device has). What to expect: float32 far
under 1e-3, TF32 about 3e-4, bf16 operands 1e-3 to 1e-2. An untrained model's score map is flat,
so a bf16 peak can move to another cell (and the box with it) on random weights: `--checkpoint`
compares a trained model's.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lgtrack_jax.models import layers, lgtrack  # pylint: disable=wrong-import-position
from lgtrack_jax import checkpoint  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_BATCH = flags.DEFINE_integer("batch", 8, "Examples per forward.")
_VARIANTS = flags.DEFINE_list("variants", None, "DTYPE:ATTENTION:CONV variants to compare.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "Train workdir whose latest params to use (default: random).")
flags.mark_flags_as_required(["config"])

OUTPUTS = ("score_logits", "size", "offset", "boxes", "vision_tokens", "text_embed")


def default_variants() -> list[str]:
  bf16 = ["bfloat16:flax:xla", "bfloat16:xla:xla"]
  if jax.devices()[0].platform == "gpu":
    bf16.append("bfloat16:cudnn:xla")
  if jax.devices()[0].platform == "cpu":
    bf16.append("bfloat16:matmul:matmul")
  return ["float32:flax:xla"] + bf16


def random_inputs(config, b: int, seed: int = 1) -> dict[str, jnp.ndarray]:
  """Random frames, template boxes, sentences of 4 to max_len tokens and modes 0/1/2."""
  rng = np.random.default_rng(seed)
  zs, xs, l = config.data.template_size, config.data.search_size, config.model.text.max_len
  lens = rng.integers(min(4, l), l + 1, b)
  mask = (np.arange(l)[None] < lens[:, None]).astype(np.int32)
  return {
      "template": jnp.asarray(rng.integers(0, 256, (b, zs, zs, 3), dtype=np.uint8)),
      "search": jnp.asarray(rng.integers(0, 256, (b, xs, xs, 3), dtype=np.uint8)),
      "template_box": jnp.asarray(np.c_[rng.uniform(0.2, 0.4, (b, 2)),
                                        rng.uniform(0.2, 0.5, (b, 2))], jnp.float32),
      "text_ids": jnp.asarray(rng.integers(1000, 20000, (b, l)) * mask, jnp.int32),
      "text_mask": jnp.asarray(mask),
      "mode": jnp.asarray(rng.integers(0, 3, b), jnp.int32),
  }


def with_switches(config, dtype: str, attention: str, conv: str):
  c = config.copy_and_resolve_references()
  c.unlock()
  c.model.dtype, c.model.attention, c.model.conv = dtype, attention, conv
  return c


def forward(config, params, inputs, precision: str) -> tuple[dict[str, np.ndarray], float]:
  """(outputs as float64 numpy, seconds per forward: median of 5 after a warm-up)."""
  model = lgtrack.build_model(config)
  p = layers.cast_kernels(params, jnp.dtype(config.model.dtype))
  with jax.default_matmul_precision(precision):
    f = jax.jit(lambda p, i: model.apply({"params": p}, **i))
    out = jax.block_until_ready(f(p, inputs))
    times = []
    for _ in range(5):
      t0 = time.perf_counter()
      jax.block_until_ready(f(p, inputs))
      times.append(time.perf_counter() - t0)
  return {k: np.asarray(out[k], np.float64) for k in OUTPUTS}, float(np.median(times))


def compare(out: dict, ref: dict, search_px: int) -> dict:
  b = ref["score_logits"].shape[0]
  peaks = [np.argmax(o["score_logits"].reshape(b, -1), 1) for o in (out, ref)]
  return {
      "finite": bool(all(np.isfinite(v).all() for v in out.values())),
      "rel_err": {k: float(f"{np.linalg.norm(out[k] - ref[k]) / np.linalg.norm(ref[k]):.2e}")
                  for k in OUTPUTS},
      "same_peak_cell": float(np.mean(peaks[0] == peaks[1])),
      "max_box_diff_search_px": round(float(np.abs(out["boxes"] - ref["boxes"]).max())
                                      * search_px, 3),
  }


def main(argv):
  del argv
  config = _CONFIG.value
  variants = _VARIANTS.value or default_variants()
  for variant in variants:  # before any work
    if len(variant.split(":")) != 3:
      raise ValueError(f"--variants: {variant!r} is not DTYPE:ATTENTION:CONV "
                       "(e.g. bfloat16:cudnn:xla)")
  inputs = random_inputs(config, _BATCH.value)
  if _CHECKPOINT.value:
    params, _ = checkpoint.load_params(_CHECKPOINT.value, config)
  else:
    base = lgtrack.build_model(config)
    params = jax.jit(base.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  reference = with_switches(config, "float32", "flax", "xla")
  ref, seconds = forward(reference, params, inputs, "highest")
  print(json.dumps({"variant": "float32:flax:xla highest (reference)", "batch": _BATCH.value,
                    "device": jax.devices()[0].device_kind, "ms": round(seconds * 1e3, 2)}),
        flush=True)
  for variant in variants:
    dtype, attention, conv = variant.split(":")
    out, seconds = forward(with_switches(config, dtype, attention, conv), params, inputs,
                           "default")
    print(json.dumps({"variant": variant, "ms": round(seconds * 1e3, 2),
                      **compare(out, ref, config.data.search_size)}), flush=True)


if __name__ == "__main__":
  app.run(main)
