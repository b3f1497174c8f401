"""Hanning window over the score map: the tracker's smooth-motion prior."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def hann2d(height: int, width: int) -> np.ndarray:
  """[height, width] float32 outer product of Hann windows, peak 1 at the centre, > 0 at edges."""
  def hann1d(n: int) -> np.ndarray:
    k = np.arange(1, n + 1)
    return 0.5 * (1 - np.cos(2 * np.pi * k / (n + 1)))
  return np.outer(hann1d(height), hann1d(width)).astype(np.float32)


def windowed_scores(score_logits, window, influence: float | None):
  """The score map the tracker takes its peak of: score logits [B, H, W], window [H, W].

  influence None: OSTrack's rule, the window times the head's sigmoid score, clamped to
  [1e-4, 1 - 1e-4] as OSTrack's head clamps it (`_sigmoid`), so saturated cells tie and the
  window decides between them. A float: the blend (1 - influence) * score + influence * window
  of the Siamese trackers (SiamRPN++, STARK's variants).
  """
  score = jnp.clip(jax.nn.sigmoid(score_logits), 1e-4, 1 - 1e-4)  # as head.clamped_sigmoid
  if influence is None:
    return score * window[None]
  return (1 - influence) * score + influence * window[None]
