"""Position-embedding grids of pretrained ViTs: class-token split and bicubic resampling.

A pretrained ViT stores `pos_embed` as [1, P + gh * gw, D]: P prefix entries (class token,
DeiT's distillation token) then the patch grid row by row. A one-stream tracker has no prefix
tokens and two grids of its own (template, search), so the converters drop the prefix and resample
the patch grid to each, bicubically, exactly as OSTrack does (`F.interpolate(mode='bicubic',
align_corners=False)`, no antialiasing; timm's `resample_abs_pos_embed` differs from it only by
antialiasing when it shrinks a grid).
"""

from __future__ import annotations

import math

import numpy as np

# PyTorch's cubic convolution coefficient (OpenCV's too); Keys' 'bicubic' elsewhere uses -0.5.
_CUBIC_A = -0.75


def _cubic_weights(t: np.ndarray) -> np.ndarray:
  """Fractional offsets t [N] in [0, 1) -> weights [N, 4] of the taps at -1, 0, +1, +2."""
  a = _CUBIC_A
  near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # |x| <= 1
  far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # 1 < |x| < 2
  return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
  """[size_out, size_in] float64 matrix of 1-D bicubic resampling (align_corners=False).

  Source coordinate of output i: (i + 0.5) * size_in / size_out - 0.5; taps outside the input
  are clamped to the border (PyTorch's upsample_bicubic2d).
  """
  src = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
  base = np.floor(src)
  weights = _cubic_weights(src - base)
  matrix = np.zeros((size_out, size_in), np.float64)
  for tap in range(4):
    idx = np.clip(base.astype(np.int64) - 1 + tap, 0, size_in - 1)
    np.add.at(matrix, (np.arange(size_out), idx), weights[:, tap])
  return matrix


def resample_grid(grid: np.ndarray, new_grid: tuple[int, int]) -> np.ndarray:
  """Bicubically resamples a position-embedding grid: [gh, gw, D] -> [new_grid[0], new_grid[1], D].

  Matches `torch.nn.functional.interpolate(mode='bicubic', align_corners=False)` (what OSTrack
  applies to MAE's 14x14 grid). Computed in float64; returns float32. Same size: a copy.
  """
  gh, gw, _ = grid.shape
  nh, nw = new_grid
  x = np.asarray(grid, np.float64)
  if (gh, gw) != (nh, nw):
    x = np.einsum("ah,hwd,bw->abd", _bicubic_matrix(gh, nh), x, _bicubic_matrix(gw, nw))
  return x.astype(np.float32)


def split_tokens(pos_embed: np.ndarray, num_prefix_tokens: int) -> tuple[int, np.ndarray]:
  """[1, P + g * g, D] or [P + g * g, D] -> (P, patch grid [g, g, D]).

  `num_prefix_tokens` is what the checkpoint's other tensors suggest (class + distillation
  tokens). Some timm ViTs keep a class token but no position for it (`no_embed_class`): when
  N - P is not a square but N is, P is taken as 0. Raises ValueError for a non-square grid.
  """
  x = np.asarray(pos_embed)
  if x.ndim == 3 and x.shape[0] == 1:
    x = x[0]
  if x.ndim != 2:
    raise ValueError(f"position embedding of shape {tuple(pos_embed.shape)} is not [1, N, D]")
  n = x.shape[0]
  for prefix in (num_prefix_tokens, 0):
    g = math.isqrt(max(n - prefix, 0))
    if g > 0 and g * g == n - prefix:
      return prefix, x[prefix:].reshape(g, g, x.shape[1])
  raise ValueError(f"{n} position embeddings are not {num_prefix_tokens} prefix tokens plus a "
                   "square patch grid")


def to_grid(pos_embed: np.ndarray, new_grid: tuple[int, int], num_prefix_tokens: int = 0
            ) -> np.ndarray:
  """A pretrained [1, N, D] position embedding -> our [new_grid[0], new_grid[1], D] float32."""
  _, grid = split_tokens(pos_embed, num_prefix_tokens)
  return resample_grid(grid, new_grid)
