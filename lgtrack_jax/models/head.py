"""OSTrack-style center head on the search feature map, and the map -> box decoding."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lgtrack_jax.models import layers

# Score-map bias so that sigmoid(bias) = 0.1 at init: CenterNet's prior, keeps focal loss stable.
_SCORE_PRIOR_BIAS = -2.19


class CenterHead(nn.Module):
  """features [B, H, W, C] -> score logits [B, H, W], size [B, H, W, 2], offset [B, H, W, 2].

  size is sigmoid (w, h as a fraction of the crop), clamped to [1e-4, 1 - 1e-4] as OSTrack's
  `_sigmoid`; offset is the sub-cell centre position.

  Each branch is `num_convs` 3x3 conv + norm + ReLU layers, then a 1x1 conv. `norm`: 'layer'
  (LayerNorm) or 'none' (OSTrack's conv-BatchNorm-ReLU in eval mode, the BatchNorm folded into
  the conv's kernel and bias by the weight converter). With `taper`,
  as OSTrack's head, the layers have `channels`, `channels / 2`, `channels / 4`, ... outputs
  (lgtrack_b256: 256, 128, 64, 32 over 256 input channels, 0.41x the multiply-adds of four
  256-channel layers); without, `channels` each.

  With `select_cells` (score logits [B, H, W] float32 -> cells [B, 2] int32 (row, col)), the size
  and offset branches run only over the receptive field of the selected cells, and size and offset
  come back as [B, 2] at those cells. A tracker reads the box at one cell per frame, so this is the
  same box for about a third of the head's FLOPs (two of its three branches, each a stack of
  `num_convs` 3x3 convolutions, shrink from H x W cells to (2 * num_convs + 1)^2 and less).
  """

  channels: int
  num_convs: int = 2
  dtype: Any = jnp.float32
  conv: str = "xla"  # model.conv
  taper: bool = False  # model.head.taper
  norm: str = "layer"  # model.head.norm

  def layer_channels(self) -> tuple[int, ...]:
    """Output channels of each 3x3 conv of a branch."""
    if not self.taper:
      return (self.channels,) * self.num_convs
    if self.channels % 2 ** max(self.num_convs - 1, 0):
      raise ValueError(f"model.head.channels={self.channels} must be divisible by "
                       f"2^(num_convs - 1) = {2 ** (self.num_convs - 1)} with model.head.taper")
    return tuple(self.channels // 2 ** i for i in range(self.num_convs))

  @nn.compact
  def __call__(self, x: jnp.ndarray, select_cells: Callable | None = None):
    def branch(name: str, out: int, bias_init=nn.initializers.zeros, padding="SAME"):
      # Windows (the receptive field: 9 x 9 cells and less for 4 convs) run as matrix products
      # whatever `conv` says: on XLA:CPU that is 1.2-2x faster than its convolution at those sizes
      # in float32, up to 3x in bf16.
      impl = self.conv if padding == "SAME" else "matmul"
      convs = [layers.Conv(c, (3, 3), self.dtype, f"{name}_conv{i}", impl, padding=padding)
               for i, c in enumerate(self.layer_channels())]
      if self.norm not in ("layer", "none"):
        raise ValueError(f"model.head.norm={self.norm!r}: expected 'layer' or 'none'")
      norms = [nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name=f"{name}_norm{i}")
               if self.norm == "layer" else (lambda y: y) for i in range(self.num_convs)]
      last = layers.Conv(out, (1, 1), self.dtype, f"{name}_out", self.conv, bias_init=bias_init)

      def apply(y, valid=None):
        """valid [B, h, w] (window mode, 'VALID' convolutions): each layer's output is the window
        less its border ring; its cells outside the feature map are zeroed, as the full map's zero
        padding has them for the next layer."""
        for conv, norm in zip(convs, norms):
          y = nn.relu(norm(conv(y)))
          if valid is not None:
            valid = valid[:, 1:-1, 1:-1]
            y = y * valid[..., None].astype(y.dtype)
        return last(y)

      return apply

    score = branch("score", 1, nn.initializers.constant(_SCORE_PRIOR_BIAS))(x)[..., 0]
    score = score.astype(jnp.float32)
    # Over windows, 'VALID' convolutions: the same parameters, only the padding differs.
    padding = "SAME" if select_cells is None else "VALID"
    size_branch = branch("size", 2, padding=padding)
    offset_branch = branch("offset", 2, padding=padding)
    if select_cells is None:
      return (score, clamped_sigmoid(size_branch(x)).astype(jnp.float32),
              offset_branch(x).astype(jnp.float32))
    cells = select_cells(score)
    window, valid = receptive_windows(x, cells, self.num_convs)
    size = clamped_sigmoid(size_branch(window, valid))[:, 0, 0]
    offset = offset_branch(window, valid)[:, 0, 0]
    return score, size.astype(jnp.float32), offset.astype(jnp.float32), cells


def clamped_sigmoid(x: jnp.ndarray) -> jnp.ndarray:
  """sigmoid(x) clamped to [1e-4, 1 - 1e-4]: OSTrack's head's `_sigmoid`."""
  return jnp.clip(nn.sigmoid(x), 1e-4, 1 - 1e-4)


def receptive_windows(x: jnp.ndarray, cells: jnp.ndarray, radius: int
                      ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The (2 * radius + 1)^2 windows of x [B, H, W, C] centred on cells [B, 2] int32 (row, col),
  zero outside the map -> (windows [B, 2r+1, 2r+1, C], valid [B, 2r+1, 2r+1] bool: inside)."""
  b, h, w, c = x.shape
  size = 2 * radius + 1
  padded = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
  windows = jax.vmap(lambda img, rc: jax.lax.dynamic_slice(
      img, (rc[0], rc[1], jnp.zeros_like(rc[0])), (size, size, c)))(padded, cells)
  rows = cells[:, 0, None] + jnp.arange(-radius, radius + 1)  # [B, 2r+1]
  cols = cells[:, 1, None] + jnp.arange(-radius, radius + 1)
  valid = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
  return windows, valid


def box_at_cells(size: jnp.ndarray, offset: jnp.ndarray, cells: jnp.ndarray,
                 grid: tuple[int, int]) -> jnp.ndarray:
  """The box of each cell from the head's outputs there: size/offset [B, 2], cells [B, 2] int
  (row, col), grid (H, W) -> [B, 4] normalised cxcywh in the crop: centre = (cell + offset) / grid.
  """
  h, w = grid
  cx = (cells[:, 1].astype(jnp.float32) + offset[:, 0]) / w
  cy = (cells[:, 0].astype(jnp.float32) + offset[:, 1]) / h
  return jnp.stack([cx, cy, size[:, 0], size[:, 1]], axis=-1)


def boxes_at(size: jnp.ndarray, offset: jnp.ndarray, cells: jnp.ndarray) -> jnp.ndarray:
  """Boxes read at given cells of the maps: size/offset [B, H, W, 2], cells [B, 2] int (row, col)
  -> [B, 4] normalised cxcywh in the crop (see `box_at_cells`)."""
  batch = jnp.arange(size.shape[0])
  rows, cols = cells[:, 0], cells[:, 1]
  return box_at_cells(size[batch, rows, cols], offset[batch, rows, cols], cells, size.shape[1:3])


def argmax_cells(score: jnp.ndarray) -> jnp.ndarray:
  """score [B, H, W] -> [B, 2] int32 (row, col) of each map's maximum."""
  b, h, w = score.shape
  flat = jnp.argmax(score.reshape(b, h * w), axis=-1)
  return jnp.stack([flat // w, flat % w], axis=-1).astype(jnp.int32)


def decode_boxes(score: jnp.ndarray, size: jnp.ndarray, offset: jnp.ndarray) -> jnp.ndarray:
  """The box at the highest score: [B, H, W], [B, H, W, 2] x2 -> [B, 4] normalised cxcywh."""
  return boxes_at(size, offset, argmax_cells(score))
