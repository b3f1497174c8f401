"""Hanning window over the score map: the tracker's smooth-motion prior."""

from __future__ import annotations

import numpy as np


def hann2d(height: int, width: int) -> np.ndarray:
  """[height, width] float32 outer product of Hann windows, peak 1 at the centre, > 0 at edges."""
  def hann1d(n: int) -> np.ndarray:
    k = np.arange(1, n + 1)
    return 0.5 * (1 - np.cos(2 * np.pi * k / (n + 1)))
  return np.outer(hann1d(height), hann1d(width)).astype(np.float32)
