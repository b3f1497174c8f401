"""One-pass evaluation (OPE) metrics of LaSOT, LaSOT_ext, TNL2K and OTB (docs/design.md section 9).

Pure numpy, so an evaluation job needs neither JAX nor TensorFlow. The numbers match the official
LaSOT/TNL2K MATLAB toolkit (`utils/calc_seq_err_robust.m`, `utils/eval_tracker.m`) and, with
`protocol="pytracking"`, pytracking's `lib/test/analysis/extract_results.py`.

Boxes are float64 `x, y, w, h` in pixels. A sequence of N frames gives three curves, each the share
of the N frames (the full length: absent frames stay in the denominator) that succeed:
  success        [21]: IoU > t,                 t = 0, 0.05, ..., 1
  precision      [51]: center error <= t px,    t = 0, 1, ..., 50
  norm_precision [51]: normalised error <= t,   t = 0, 0.01, ..., 0.5
The dataset curve is the mean of the sequence curves; AUC is the mean of its 21 points (not a
trapezoid: a perfect tracker scores 20/21 = 95.24 because IoU 1 is not > 1), P@20 and NP@0.20 are
single points of the others.

These functions are not meant for GOT-10k or TrackingNet: their protocols differ
(docs/design.md section 9).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

# Thresholds are built from integers and divided once so that 0.2 is exactly index 20 of the
# normalised grid (np.arange(0, 0.51, 0.01) drifts: its 0.2 is not the double 0.2).
OVERLAP_THRESHOLDS = np.arange(21, dtype=np.float64) / 20.0  # [21]
CENTER_THRESHOLDS_PX = np.arange(51, dtype=np.float64)  # [51]
NORM_CENTER_THRESHOLDS = np.arange(51, dtype=np.float64) / 100.0  # [51]
PRECISION_INDEX = 20  # CENTER_THRESHOLDS_PX[20] == 20 px
NORM_PRECISION_INDEX = 20  # NORM_CENTER_THRESHOLDS[20] == 0.20

Validity = Literal["all4", "wh"]
Protocol = Literal["official", "pytracking"]
VALIDITY_RULES = ("all4", "wh")
PROTOCOLS = ("official", "pytracking")


def _as_boxes(a: np.ndarray, name: str) -> np.ndarray:
  """Returns `a` as a float64 [N, 4] array, or raises naming the argument."""
  a = np.asarray(a, dtype=np.float64)
  if a.ndim != 2 or a.shape[1] != 4:
    raise ValueError(f"{name} must be [N, 4] x,y,w,h boxes, got shape {a.shape}")
  return a


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Row-wise IoU of two sets of x,y,w,h boxes, as the toolkits compute it (no +1 pixel).

  Args:
    a: [N, 4] boxes, x,y,w,h.
    b: [N, 4] boxes, x,y,w,h.
  Returns:
    [N] float64. inter = max(0, min(ax+aw, bx+bw) - max(ax, bx)) * (same along y),
    IoU = inter / (wa*ha + wb*hb - inter). Degenerate inputs are not clipped (the toolkits do not
    clip either): an empty union gives NaN, which fails every success threshold.
  """
  a = _as_boxes(a, "a")
  b = _as_boxes(b, "b")
  if a.shape != b.shape:
    raise ValueError(f"iou needs boxes of the same shape, got {a.shape} and {b.shape}")
  lo = np.maximum(a[:, :2], b[:, :2])
  hi = np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
  inter = np.prod(np.maximum(0.0, hi - lo), axis=1)
  union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
  with np.errstate(divide="ignore", invalid="ignore"):
    return inter / union


def center_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Center location errors of predictions against ground truth.

  Centers are (x + (w-1)/2, y + (h-1)/2), the toolkits' 1-based pixel convention.

  Args:
    pred: [N, 4] predicted x,y,w,h.
    gt: [N, 4] ground-truth x,y,w,h.
  Returns:
    err_px: [N] float64 Euclidean distance between the centers, in pixels.
    err_norm: [N] float64 sqrt(((cxp-cxg)/wg)^2 + ((cyp-cyg)/hg)^2); inf or NaN where the ground
      truth has a zero size (such frames are invalid and overridden by `sequence_curves`).
  """
  pred = _as_boxes(pred, "pred")
  gt = _as_boxes(gt, "gt")
  if pred.shape != gt.shape:
    raise ValueError(f"center_errors needs equal shapes, got {pred.shape} and {gt.shape}")
  diff = (pred[:, :2] + (pred[:, 2:] - 1.0) / 2.0) - (gt[:, :2] + (gt[:, 2:] - 1.0) / 2.0)
  err_px = np.sqrt(np.sum(diff**2, axis=1))
  with np.errstate(divide="ignore", invalid="ignore"):
    err_norm = np.sqrt(np.sum((diff / gt[:, 2:]) ** 2, axis=1))
  return err_px, err_norm


def prepare_predictions(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """Cleans raw tracker output the way `calc_seq_err_robust.m` does before scoring.

  In order, as the MATLAB toolkit and pytracking do it:
    1. longer than `gt` -> truncated (LaSOT's monkey-17 ground truth was cut after results were
       published); shorter -> ValueError;
    2. from frame 1 on, a row with a non-finite value or w <= 0 or h <= 0 takes the previous
       (already cleaned) row, except where the ground-truth row has a NaN: both references skip
       those rows, which are absent for scoring anyway;
    3. frame 0 is replaced by the ground truth (the initialisation box is given, not predicted).
  Step 3 after step 2 means a bad frame-0 row is what an immediately following bad row inherits;
  that only matters when frames 0 and 1 are both bad, and matches both references.

  Args:
    pred: [M, 4] x,y,w,h as read from a result file (M >= N).
    gt: [N, 4] ground-truth x,y,w,h.
  Returns:
    [N, 4] float64, a new array.
  Raises:
    ValueError: wrong shapes or M < N; the message names both lengths (callers add the file).
  """
  pred = _as_boxes(pred, "pred")
  gt = _as_boxes(gt, "gt")
  n = gt.shape[0]
  if pred.shape[0] < n:
    raise ValueError(f"{pred.shape[0]} predicted boxes for {n} ground-truth frames (too few)")
  pred = pred[:n].copy()
  if n == 0:
    return pred
  bad = ~np.all(np.isfinite(pred), axis=1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
  keeps_own = ~bad | np.any(np.isnan(gt), axis=1)
  keeps_own[0] = True
  # The sequential "copy the previous row" loop equals indexing every row by the last row at or
  # before it that keeps its own value.
  source = np.maximum.accumulate(np.where(keeps_own, np.arange(n), 0))
  pred = pred[source]
  pred[0] = gt[0]
  return pred


def valid_gt(gt: np.ndarray, validity: Validity = "all4") -> np.ndarray:
  """Which ground-truth rows can be scored.

  Args:
    gt: [N, 4] x,y,w,h.
    validity: "all4": x, y, w, h all > 0 (the official toolkit); "wh": w, h > 0 (pytracking and
      its ports, e.g. OSTrack).
  Returns:
    [N] bool. NaN rows are never valid.
  """
  gt = _as_boxes(gt, "gt")
  if validity == "all4":
    return np.all(gt > 0, axis=1)
  if validity == "wh":
    return np.all(gt[:, 2:] > 0, axis=1)
  raise ValueError(f"validity must be one of {VALIDITY_RULES}, got {validity!r}")


def sequence_curves(
    pred: np.ndarray,
    gt: np.ndarray,
    absent: np.ndarray | None,
    *,
    validity: Validity = "all4",
    protocol: Protocol = "official",
) -> dict[str, np.ndarray]:
  """OPE curves of one sequence, after `prepare_predictions`.

  Frame classes and their outcome (N, the full sequence length, is always the denominator):
    absent (flag set, or a NaN ground-truth row): fails all three curves (the official toolkit
      deletes these frames before counting; pytracking sets their errors to inf for LaSOT);
    present, ground truth invalid under `validity`: IoU = -1, fails every success threshold; the
      center errors depend on `protocol`:
        "official" (`calc_seq_err_robust.m`: `err_center(~idx) = -1`): both errors are -1, so the
          frame PASSES every precision and normalised-precision threshold;
        "pytracking" (`calc_seq_err_robust` in `extract_results.py`): the pixel error is inf
          (fails precision) while the normalised error is -1 (passes normalised precision);
    present and valid: scored with `iou` and `center_errors`.
  A NaN IoU or error (possible only from degenerate predictions that could not be replaced)
  compares false, so the frame fails.

  Args:
    pred: [M, 4] raw predicted x,y,w,h, M >= N.
    gt: [N, 4] ground-truth x,y,w,h.
    absent: [N] bool or 0/1 (1 = target fully occluded or out of view), or None for none.
    validity: "all4" or "wh", see `valid_gt`.
    protocol: "official" or "pytracking", see above.
  Returns:
    {"success": [21], "precision": [51], "norm_precision": [51]} float64 shares in [0, 1] over
    OVERLAP_THRESHOLDS, CENTER_THRESHOLDS_PX and NORM_CENTER_THRESHOLDS, and "num_frames" (N).
  """
  if protocol not in PROTOCOLS:
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
  gt = _as_boxes(gt, "gt")
  n = gt.shape[0]
  if n == 0:
    raise ValueError("cannot score a sequence with no ground-truth frames")
  if absent is None:
    absent = np.zeros(n, dtype=bool)
  absent = np.asarray(absent).reshape(-1)
  if absent.shape[0] != n:
    raise ValueError(f"{absent.shape[0]} absence flags for {n} ground-truth frames")
  absent = (absent != 0) | np.any(np.isnan(gt), axis=1)
  valid = valid_gt(gt, validity) & ~absent

  pred = prepare_predictions(pred, gt)
  overlap = np.where(valid, iou(pred, gt), -1.0)
  err_px, err_norm = center_errors(pred, gt)
  err_px = np.where(valid, err_px, -1.0 if protocol == "official" else np.inf)
  err_norm = np.where(valid, err_norm, -1.0)
  err_px[absent] = np.inf
  err_norm[absent] = np.inf

  # Comparisons with NaN are false and must stay silent.
  with np.errstate(invalid="ignore"):
    success = np.sum(overlap[:, None] > OVERLAP_THRESHOLDS[None, :], axis=0) / n
    precision = np.sum(err_px[:, None] <= CENTER_THRESHOLDS_PX[None, :], axis=0) / n
    norm_precision = np.sum(err_norm[:, None] <= NORM_CENTER_THRESHOLDS[None, :], axis=0) / n
  return {
      "success": success,
      "precision": precision,
      "norm_precision": norm_precision,
      "num_frames": n,
  }


def summarize(curves: Sequence[dict]) -> dict:
  """Dataset scores: the mean of the sequences' curves, then AUC, P@20 and NP@0.20.

  Args:
    curves: outputs of `sequence_curves`, one per sequence (each sequence weighs the same,
      whatever its length, as in the toolkits).
  Returns:
    {"auc", "precision", "norm_precision"}: Python floats in percent;
    {"success_curve" [21], "precision_curve" [51], "norm_precision_curve" [51]}: float64 mean
    curves in percent; "num_sequences": int.
  """
  if len(curves) == 0:
    raise ValueError("summarize needs at least one sequence")
  success = 100.0 * np.mean(np.stack([c["success"] for c in curves]), axis=0)
  precision = 100.0 * np.mean(np.stack([c["precision"] for c in curves]), axis=0)
  norm_precision = 100.0 * np.mean(np.stack([c["norm_precision"] for c in curves]), axis=0)
  return {
      "auc": float(np.mean(success)),
      "precision": float(precision[PRECISION_INDEX]),
      "norm_precision": float(norm_precision[NORM_PRECISION_INDEX]),
      "success_curve": success,
      "precision_curve": precision,
      "norm_precision_curve": norm_precision,
      "num_sequences": len(curves),
  }
