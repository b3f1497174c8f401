"""OSTrack-style center head on the search feature map, and the map -> box decoding."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from lgtrack_jax.models import layers

# Score-map bias so that sigmoid(bias) = 0.1 at init: CenterNet's prior, keeps focal loss stable.
_SCORE_PRIOR_BIAS = -2.19


class CenterHead(nn.Module):
  """features [B, H, W, C] -> score logits [B, H, W], size [B, H, W, 2], offset [B, H, W, 2].

  size is sigmoid (w, h as a fraction of the crop); offset is the sub-cell centre position.
  """

  channels: int
  num_convs: int = 2
  dtype: Any = jnp.float32
  conv: str = "xla"  # model.conv

  @nn.compact
  def __call__(self, x: jnp.ndarray):
    def branch(name: str, out: int, bias_init=nn.initializers.zeros):
      y = x
      for i in range(self.num_convs):
        y = layers.Conv(self.channels, (3, 3), self.dtype, f"{name}_conv{i}", self.conv)(y)
        y = nn.relu(nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name=f"{name}_norm{i}")(y))
      return layers.Conv(out, (1, 1), self.dtype, f"{name}_out", self.conv,
                         bias_init=bias_init)(y)

    score = branch("score", 1, nn.initializers.constant(_SCORE_PRIOR_BIAS))[..., 0]
    size = nn.sigmoid(branch("size", 2))
    offset = branch("offset", 2)
    return score.astype(jnp.float32), size.astype(jnp.float32), offset.astype(jnp.float32)


def boxes_at(size: jnp.ndarray, offset: jnp.ndarray, cells: jnp.ndarray) -> jnp.ndarray:
  """Boxes read at given cells: size/offset [B, H, W, 2], cells [B, 2] int (row, col) -> [B, 4].

  The box is normalised cxcywh in the crop: centre = (cell + offset) / grid.
  """
  b, h, w, _ = size.shape
  rows, cols = cells[:, 0], cells[:, 1]
  batch = jnp.arange(b)
  off = offset[batch, rows, cols]
  wh = size[batch, rows, cols]
  cx = (cols.astype(jnp.float32) + off[:, 0]) / w
  cy = (rows.astype(jnp.float32) + off[:, 1]) / h
  return jnp.stack([cx, cy, wh[:, 0], wh[:, 1]], axis=-1)


def argmax_cells(score: jnp.ndarray) -> jnp.ndarray:
  """score [B, H, W] -> [B, 2] int32 (row, col) of each map's maximum."""
  b, h, w = score.shape
  flat = jnp.argmax(score.reshape(b, h * w), axis=-1)
  return jnp.stack([flat // w, flat % w], axis=-1).astype(jnp.int32)


def decode_boxes(score: jnp.ndarray, size: jnp.ndarray, offset: jnp.ndarray) -> jnp.ndarray:
  """The box at the highest score: [B, H, W], [B, H, W, 2] x2 -> [B, 4] normalised cxcywh."""
  return boxes_at(size, offset, argmax_cells(score))
