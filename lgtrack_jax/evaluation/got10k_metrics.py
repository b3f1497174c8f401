"""GOT-10k's protocol (docs/design.md section 9): AO, SR0.5, SR0.75, as its toolkit scores the
val split (`got10k/experiments/got10k.py`, `got10k/utils/metrics.py::rect_iou`).

It differs from OPE on purpose, so it lives apart from `metrics.py`:
  * frame 0 (the initialisation) is dropped, not overwritten with the ground truth;
  * both boxes are clipped to the image first (x to [0, W], w to [0, W - x]; same for y, h);
  * only frames whose `cover.label` is > 0 count (the target is at least partly visible);
  * IoU has the toolkit's `eps` in the denominator and is clipped to [0, 1];
  * frames are pooled over the whole split (a long sequence weighs more), then
    AO = mean IoU, SR_t = share of IoU > t; the success curve has 101 thresholds 0, 0.01, ..., 1.
Scores are in percent. The test split's ground truth is withheld (server-side scoring).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SUCCESS_THRESHOLDS = np.arange(101, dtype=np.float64) / 100.0  # [101]


def clip_to_image(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
  """[N, 4] x,y,w,h -> clipped as the toolkit does: x in [0, W], w in [0, W - x]; same in y."""
  b = np.array(boxes, np.float64)
  b[:, 0] = np.clip(b[:, 0], 0, width)
  b[:, 1] = np.clip(b[:, 1], 0, height)
  b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
  b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
  return b


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Row-wise IoU of [N, 4] x,y,w,h boxes with the toolkit's eps, clipped to [0, 1] -> [N]."""
  x1 = np.maximum(a[:, 0], b[:, 0])
  y1 = np.maximum(a[:, 1], b[:, 1])
  x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
  y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
  inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
  union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
  return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def sequence_ious(pred: np.ndarray, gt: np.ndarray, cover: np.ndarray,
                  image_size: tuple[int, int]) -> np.ndarray:
  """IoUs of the frames that count: pred/gt [N, 4], cover [N] ints, image_size (W, H) -> [M].

  Predictions must have exactly N rows (the toolkit asserts equal shapes).
  """
  pred = np.asarray(pred, np.float64)
  gt = np.asarray(gt, np.float64)
  if pred.shape != gt.shape:
    raise ValueError(f"GOT-10k needs one prediction per frame: got {pred.shape[0]} rows for "
                     f"{gt.shape[0]} frames")
  w, h = image_size
  ious = iou(clip_to_image(pred[1:], w, h), clip_to_image(gt[1:], w, h))
  return ious[np.asarray(cover)[1:] > 0]


def summarize(ious: Sequence[np.ndarray]) -> dict:
  """Split scores from the sequences' `sequence_ious`, frames pooled.

  Returns {'ao', 'sr50', 'sr75'} floats in percent, 'success_curve' [101] in percent,
  'num_frames'.
  """
  pooled = np.concatenate([np.asarray(i, np.float64) for i in ious])
  if pooled.size == 0:
    raise ValueError("no frames to score (every frame has cover 0?)")
  return {
      "ao": 100.0 * float(pooled.mean()),
      "sr50": 100.0 * float((pooled > 0.5).mean()),
      "sr75": 100.0 * float((pooled > 0.75).mean()),
      "success_curve": 100.0 * (pooled[:, None] > SUCCESS_THRESHOLDS[None, :]).mean(0),
      "num_frames": int(pooled.size),
  }
