"""AdamW with per-group learning-rate multipliers, warmup + decay, global-norm clipping.

Groups (by top-level param name): 'backbone' (patch/position embeddings, ViT blocks, final
norm), 'text' (the text encoder; frozen when `model.text.trainable` is False) and 'head'
(everything LGTrack adds: EMIM, decoder, head, projections), which gets the base lr.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

_BACKBONE = re.compile(r"^(patch_embed|pos_embed_[zx]|blocks_\d+|norm)$")


def param_labels(params) -> dict:
  """Pytree like `params` with one of 'backbone' | 'text' | 'head' per leaf."""
  def label(top: str) -> str:
    if top == "text_encoder":
      return "text"
    return "backbone" if _BACKBONE.match(top) else "head"

  flat = traverse_util.flatten_dict(params)
  return traverse_util.unflatten_dict({k: label(k[0]) for k in flat})


def lr_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Base-lr schedule: linear warmup, then cosine to 0 or a x0.1 step at `optim.step_decay_at`."""
  o, steps = config.optim, config.train.steps
  warmup = min(o.warmup_steps, max(steps - 1, 0))
  if o.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, o.lr, warmup, max(steps, warmup + 1))
  if o.schedule == "step":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, o.lr, warmup),
         optax.piecewise_constant_schedule(o.lr, {int(steps * o.step_decay_at) - warmup: 0.1})],
        [warmup])
  raise ValueError(f"optim.schedule={o.schedule!r}: expected 'cosine' or 'step'")


def make_optimizer(config: ml_collections.ConfigDict, params) -> tuple[
    optax.GradientTransformation, optax.Schedule]:
  """The optimizer for `params` and the base-lr schedule (for logging)."""
  o = config.optim
  schedule = lr_schedule(config)
  decay_mask = jax.tree.map(lambda p: p.ndim > 1, params)  # no decay on biases, norms, gates

  def adamw(mult: float) -> optax.GradientTransformation:
    return optax.adamw(lambda step: schedule(step) * mult, b1=o.b1, b2=o.b2,
                       weight_decay=o.weight_decay, mask=decay_mask, mu_dtype=jnp.dtype(o.mu_dtype))

  labels = param_labels(params)
  if not config.model.text.trainable:
    labels = jax.tree.map(lambda l: "frozen" if l == "text" else l, labels)
  tx = optax.chain(
      optax.clip_by_global_norm(o.clip_norm),
      optax.multi_transform({"backbone": adamw(o.backbone_lr_mult), "text": adamw(o.text_lr_mult),
                             "head": adamw(1.0), "frozen": optax.set_to_zero()}, labels))
  return tx, schedule
