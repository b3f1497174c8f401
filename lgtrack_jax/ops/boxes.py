"""Box formats and overlaps. The one place a box format conversion is written.

Formats (last axis of size 4, any leading shape, float):
  xywh:   x, y of the top-left corner, width, height (files and metrics);
  xyxy:   x1, y1, x2, y2;
  cxcywh: centre x, centre y, width, height (model outputs, normalised to the crop).
Everything here is a pure jnp function; it also accepts numpy arrays.
"""

from __future__ import annotations

import jax.numpy as jnp


def xywh_to_xyxy(b: jnp.ndarray) -> jnp.ndarray:
  return jnp.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_xywh(b: jnp.ndarray) -> jnp.ndarray:
  return jnp.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def cxcywh_to_xyxy(b: jnp.ndarray) -> jnp.ndarray:
  half = b[..., 2:] / 2
  return jnp.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def xyxy_to_cxcywh(b: jnp.ndarray) -> jnp.ndarray:
  return jnp.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_cxcywh(b: jnp.ndarray) -> jnp.ndarray:
  return jnp.concatenate([b[..., :2] + b[..., 2:] / 2, b[..., 2:]], axis=-1)


def cxcywh_to_xywh(b: jnp.ndarray) -> jnp.ndarray:
  return jnp.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., 2:]], axis=-1)


def _area(b: jnp.ndarray) -> jnp.ndarray:
  return jnp.clip(b[..., 2] - b[..., 0], 0) * jnp.clip(b[..., 3] - b[..., 1], 0)


def iou_xyxy(a: jnp.ndarray, b: jnp.ndarray, eps: float = 1e-7) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Element-wise IoU of [..., 4] xyxy boxes. Returns (iou [...], union [...])."""
  lt = jnp.maximum(a[..., :2], b[..., :2])
  rb = jnp.minimum(a[..., 2:], b[..., 2:])
  inter = jnp.prod(jnp.clip(rb - lt, 0), axis=-1)
  union = _area(a) + _area(b) - inter
  return inter / (union + eps), union


def giou_xyxy(a: jnp.ndarray, b: jnp.ndarray, eps: float = 1e-7) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Element-wise generalised IoU of [..., 4] xyxy boxes. Returns (giou [...], iou [...])."""
  iou, union = iou_xyxy(a, b, eps)
  lt = jnp.minimum(a[..., :2], b[..., :2])
  rb = jnp.maximum(a[..., 2:], b[..., 2:])
  hull = jnp.prod(jnp.clip(rb - lt, 0), axis=-1)
  return iou - (hull - union) / (hull + eps), iou


def clip_xywh_to_image(b: jnp.ndarray, width: jnp.ndarray, height: jnp.ndarray,
                       min_size: float = 1.0) -> jnp.ndarray:
  """Clips [..., 4] xywh pixel boxes so they lie inside a width x height image, size >= min_size."""
  x1 = jnp.clip(b[..., 0], 0, width - min_size)
  y1 = jnp.clip(b[..., 1], 0, height - min_size)
  x2 = jnp.clip(b[..., 0] + b[..., 2], x1 + min_size, width)
  y2 = jnp.clip(b[..., 1] + b[..., 3], y1 + min_size, height)
  return jnp.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)


def clip_box_margin(b: jnp.ndarray, width: jnp.ndarray, height: jnp.ndarray,
                    margin: float) -> jnp.ndarray:
  """OSTrack's `clip_box` (lib/utils/box_ops.py) on [..., 4] xywh pixel boxes.

  x1 goes to [0, W - margin] and x2 to [margin, W] (y likewise), then w = max(margin, x2 - x1):
  a box that left the frame keeps at least `margin` pixels of it, and its size at least `margin`
  (so the next crop is not degenerate). The result may still reach past the frame by up to
  `margin` pixels, as OSTrack's does.
  """
  x1 = jnp.minimum(jnp.maximum(b[..., 0], 0.0), width - margin)
  y1 = jnp.minimum(jnp.maximum(b[..., 1], 0.0), height - margin)
  x2 = jnp.minimum(jnp.maximum(b[..., 0] + b[..., 2], margin), width)
  y2 = jnp.minimum(jnp.maximum(b[..., 1] + b[..., 3], margin), height)
  return jnp.stack([x1, y1, jnp.maximum(x2 - x1, margin), jnp.maximum(y2 - y1, margin)], axis=-1)
