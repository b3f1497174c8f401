"""OPE metrics against hand-built sequences with known answers and the real LaSOT annotations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lgtrack_jax.evaluation import metrics
from lgtrack_jax.evaluation.results import read_result

PERFECT_AUC = 100.0 * 20.0 / 21.0  # IoU 1 passes thresholds 0..0.95 but not 1.0
# Real LaSOT annotations (lion-5, microphone-6, tiger-6) vendored from the official toolkit.
LASOT_ANNOS = Path(__file__).resolve().parents[1] / "data" / "lasot_test_annos"


def _track(n: int, seed: int = 0) -> np.ndarray:
  """[n, 4] valid boxes (all of x, y, w, h > 0) drifting across a frame."""
  rng = np.random.default_rng(seed)
  xy = 50.0 + np.cumsum(rng.integers(-3, 4, size=(n, 2)), axis=0).astype(np.float64)
  wh = rng.integers(20, 60, size=(n, 2)).astype(np.float64)
  return np.concatenate([xy, wh], axis=1)


def _score(pred, gt, absent=None, **kw) -> dict:
  return metrics.summarize([metrics.sequence_curves(pred, gt, absent, **kw)])


def test_thresholds_are_exact():
  assert metrics.OVERLAP_THRESHOLDS.shape == (21,)
  assert metrics.CENTER_THRESHOLDS_PX.shape == (51,)
  assert metrics.NORM_CENTER_THRESHOLDS.shape == (51,)
  assert metrics.OVERLAP_THRESHOLDS[0] == 0.0 and metrics.OVERLAP_THRESHOLDS[-1] == 1.0
  assert metrics.OVERLAP_THRESHOLDS[10] == 0.5
  assert metrics.CENTER_THRESHOLDS_PX[metrics.PRECISION_INDEX] == 20.0
  assert metrics.NORM_CENTER_THRESHOLDS[metrics.NORM_PRECISION_INDEX] == 0.2
  assert metrics.NORM_CENTER_THRESHOLDS[-1] == 0.5


def test_iou_and_center_errors_by_hand():
  a = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 4.0, 4.0]])
  b = np.array([[5.0, 5.0, 10.0, 10.0], [20.0, 0.0, 5.0, 5.0], [1.0, 1.0, 2.0, 2.0]])
  # 5x5 overlap: 25 / (100 + 100 - 25); disjoint; b inside a: 4 / 16.
  np.testing.assert_allclose(metrics.iou(a, b), [25.0 / 175.0, 0.0, 0.25], rtol=0, atol=1e-15)
  np.testing.assert_array_equal(metrics.iou(b, b), [1.0, 1.0, 1.0])

  pred = np.array([[10.0, 20.0, 30.0, 40.0]])  # center (10 + 29/2, 20 + 39/2) = (24.5, 39.5)
  gt = np.array([[13.0, 24.0, 20.0, 10.0]])  # center (13 + 19/2, 24 + 9/2) = (22.5, 28.5)
  err, err_norm = metrics.center_errors(pred, gt)
  np.testing.assert_allclose(err, [np.hypot(2.0, -11.0)])
  np.testing.assert_allclose(err_norm, [np.hypot(2.0 / 20.0, 11.0 / 10.0)])


def test_perfect_tracker():
  gt = _track(50)
  s = _score(gt, gt)
  assert round(s["auc"], 2) == 95.24
  assert s["auc"] == pytest.approx(PERFECT_AUC, abs=1e-12)
  assert s["precision"] == 100.0
  assert s["norm_precision"] == 100.0
  assert s["success_curve"].shape == (21,)
  assert s["precision_curve"].shape == (51,)
  assert s["norm_precision_curve"].shape == (51,)
  assert s["num_sequences"] == 1


def test_absent_frames_fail_everything():
  gt = _track(10)
  absent = np.zeros(10, dtype=int)
  absent[[3, 7]] = 1
  for protocol in metrics.PROTOCOLS:
    for validity in metrics.VALIDITY_RULES:
      s = _score(gt, gt, absent, protocol=protocol, validity=validity)
      assert s["precision"] == pytest.approx(80.0)
      assert s["norm_precision"] == pytest.approx(80.0)
      assert s["auc"] == pytest.approx(0.8 * PERFECT_AUC)
      np.testing.assert_allclose(s["precision_curve"], 80.0)
  # A NaN ground-truth row counts as absent, whatever the absence flags say.
  gt_nan = gt.copy()
  gt_nan[[3, 7]] = np.nan
  s = _score(gt, gt_nan, np.zeros(10))
  assert s["precision"] == pytest.approx(80.0)
  assert s["norm_precision"] == pytest.approx(80.0)
  assert s["auc"] == pytest.approx(0.8 * PERFECT_AUC)
  # absent=None: nothing absent.
  assert _score(gt, gt, None)["precision"] == 100.0


@pytest.mark.parametrize(
    "validity, protocol, precision, norm_precision",
    [
        # x = 0 is invalid only under all4; official passes both center curves, pytracking fails
        # the pixel one and passes the normalised one (its err_center_normalized[~valid] = -1).
        ("all4", "official", 100.0, 100.0),
        ("all4", "pytracking", 90.0, 100.0),
        # Valid under wh: the frame is scored and the far-off prediction misses it.
        ("wh", "official", 90.0, 90.0),
        ("wh", "pytracking", 90.0, 90.0),
    ],
)
def test_invalid_present_x_zero(validity, protocol, precision, norm_precision):
  gt = _track(10)
  gt[4, 0] = 0.0
  pred = gt.copy()
  pred[4] += [100.0, 100.0, 0.0, 0.0]  # far off: would fail every center threshold if scored
  s = _score(pred, gt, np.zeros(10), validity=validity, protocol=protocol)
  assert s["precision"] == pytest.approx(precision)
  assert s["norm_precision"] == pytest.approx(norm_precision)
  # Invalid (IoU -1) or missed (IoU 0): the frame fails every success threshold either way.
  assert s["auc"] == pytest.approx(0.9 * PERFECT_AUC)


@pytest.mark.parametrize("protocol, precision", [("official", 100.0), ("pytracking", 90.0)])
@pytest.mark.parametrize("validity", metrics.VALIDITY_RULES)
def test_invalid_present_negative_size(validity, protocol, precision):
  gt = _track(10)
  gt[6] = [1.0, 1.0, -1.0, -1.0]  # lion-5 frame 553
  s = _score(gt, gt, np.zeros(10), validity=validity, protocol=protocol)
  assert s["precision"] == pytest.approx(precision)
  assert s["norm_precision"] == pytest.approx(100.0)
  assert s["auc"] == pytest.approx(0.9 * PERFECT_AUC)
  assert s["success_curve"][0] == pytest.approx(90.0)


def test_frame0_is_ground_truth():
  gt = _track(8)
  for garbage in ([np.nan] * 4, [0.0, 0.0, 0.0, 0.0], [1e4, 1e4, 3.0, 3.0], [5.0, 5.0, -7.0, 2.0]):
    pred = gt.copy()
    pred[0] = garbage
    np.testing.assert_array_equal(metrics.prepare_predictions(pred, gt), gt)
    s = _score(pred, gt)
    assert s["auc"] == pytest.approx(PERFECT_AUC)
    assert s["precision"] == 100.0


def test_bad_rows_carry_forward():
  gt = np.array([
      [10.0, 10.0, 10.0, 10.0],
      [10.0, 10.0, 10.0, 10.0],
      [12.0, 10.0, 10.0, 10.0],
      [14.0, 10.0, 10.0, 10.0],
      [16.0, 10.0, 10.0, 10.0],
      [18.0, 10.0, 10.0, 10.0],
  ])
  pred = np.array([
      [0.0, 0.0, 1.0, 1.0],  # frame 0: replaced by gt
      [10.0, 10.0, 10.0, 10.0],
      [np.nan, 10.0, 10.0, 10.0],  # -> frame 1
      [14.0, 10.0, 0.0, 10.0],  # zero width -> frame 1 again (the cleaned frame 2)
      [16.0, 10.0, 10.0, 10.0],
      [18.0, 10.0, 10.0, -3.0],  # negative height -> frame 4
  ])
  prepared = metrics.prepare_predictions(pred, gt)
  np.testing.assert_array_equal(
      prepared,
      [
          [10.0, 10.0, 10.0, 10.0],
          [10.0, 10.0, 10.0, 10.0],
          [10.0, 10.0, 10.0, 10.0],
          [10.0, 10.0, 10.0, 10.0],
          [16.0, 10.0, 10.0, 10.0],
          [16.0, 10.0, 10.0, 10.0],
      ],
  )
  # Shifted by 2 px: 8x10 overlap / (100 + 100 - 80); by 4 px: 60 / 140.
  np.testing.assert_allclose(
      metrics.iou(prepared, gt), [1.0, 1.0, 80.0 / 120.0, 60.0 / 140.0, 1.0, 80.0 / 120.0]
  )
  assert np.isnan(pred[2, 0])  # the input was not modified
  curves = metrics.sequence_curves(pred, gt, None)
  # IoUs 1, 1, 0.667, 0.429, 1, 0.667: five exceed t = 0.5, three exceed t = 0.7.
  assert curves["success"][10] == pytest.approx(5.0 / 6.0)
  assert curves["success"][14] == pytest.approx(3.0 / 6.0)  # t = 0.7
  # Center errors 0, 0, 2, 4, 0, 2 px.
  assert curves["precision"][0] == pytest.approx(3.0 / 6.0)
  assert curves["precision"][2] == pytest.approx(5.0 / 6.0)
  assert curves["precision"][4] == 1.0


def test_carry_forward_skips_nan_ground_truth_rows():
  # Both references only replace a bad row where the ground truth has no NaN; the bad row then
  # propagates to the following bad rows. Frames 1 and 2 fail either way.
  gt = _track(4)
  gt[1] = np.nan
  pred = gt.copy()
  pred[1] = [np.nan] * 4
  pred[2, 2] = 0.0
  prepared = metrics.prepare_predictions(pred, gt)
  assert np.isnan(prepared[1]).all() and np.isnan(prepared[2]).all()
  s = _score(pred, gt)
  assert s["precision"] == pytest.approx(50.0)
  assert s["auc"] == pytest.approx(0.5 * PERFECT_AUC)


def test_length_mismatch():
  gt = _track(5)
  longer = np.concatenate([gt, np.full((3, 4), 7.0)])
  np.testing.assert_array_equal(metrics.prepare_predictions(longer, gt), gt)
  assert _score(longer, gt)["precision"] == 100.0
  with pytest.raises(ValueError, match=r"3 predicted boxes for 5 ground-truth frames"):
    metrics.prepare_predictions(gt[:3], gt)
  with pytest.raises(ValueError, match="3.*5"):
    metrics.sequence_curves(gt[:3], gt, None)
  with pytest.raises(ValueError, match="absence flags"):
    metrics.sequence_curves(gt, gt, np.zeros(4))
  with pytest.raises(ValueError, match="protocol"):
    metrics.sequence_curves(gt, gt, None, protocol="pysot")
  with pytest.raises(ValueError, match="validity"):
    metrics.sequence_curves(gt, gt, None, validity="xy")
  with pytest.raises(ValueError):
    metrics.summarize([])


def test_summarize_means_sequence_curves():
  gt_a, gt_b = _track(10, seed=1), _track(30, seed=2)
  absent_b = np.zeros(30)
  absent_b[:15] = 1
  curves = [
      metrics.sequence_curves(gt_a, gt_a, None),
      metrics.sequence_curves(gt_b, gt_b, absent_b),
  ]
  s = metrics.summarize(curves)
  # Sequences weigh the same whatever their length: (100 + 50) / 2, not frame-pooled.
  assert s["precision"] == pytest.approx(75.0)
  assert s["auc"] == pytest.approx(0.75 * PERFECT_AUC)
  assert isinstance(s["auc"], float) and isinstance(s["precision"], float)
  assert s["num_sequences"] == 2


def test_no_jax_or_tensorflow_import():
  code = (
      "import sys\n"
      "import lgtrack_jax.evaluation.metrics, lgtrack_jax.evaluation.results\n"
      "import lgtrack_jax.evaluation.plots\n"
      "bad = [m for m in ('jax', 'tensorflow', 'flax', 'matplotlib.pyplot') if m in sys.modules]\n"
      "assert not bad, bad\n"
  )
  root = Path(__file__).resolve().parents[2]
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def _load_lasot(seq: str) -> tuple[np.ndarray, np.ndarray]:
  gt = read_result(LASOT_ANNOS / "groundtruth" / f"{seq}.txt")
  absent = np.loadtxt(LASOT_ANNOS / "absent" / f"{seq}.txt", dtype=np.int64).reshape(-1)
  assert absent.shape[0] == gt.shape[0]
  return gt, absent


def test_real_lasot_annotations():
  # (sequence, 0-based frame of a degenerate but present ground-truth row, the row)
  quirks = [
      ("lion-5", 552, [1.0, 1.0, -1.0, -1.0]),
      ("microphone-6", 1108, [1.0, 1.0, 0.0, 0.0]),
      ("tiger-6", 117, [613.0, 731.0, 247.0, -11.0]),
  ]
  rng = np.random.default_rng(0)
  noisy_curves = []
  for seq, frame, row in quirks:
    gt, absent = _load_lasot(seq)
    n = gt.shape[0]
    np.testing.assert_array_equal(gt[frame], row)
    assert absent[frame] == 0
    if seq != "tiger-6":  # tiger-6 has no absent frame
      assert absent.sum() > 0
    present = absent == 0
    valid4 = present & np.all(gt > 0, axis=1)
    valid_wh = present & np.all(gt[:, 2:] > 0, axis=1)
    assert not valid4[frame] and not valid_wh[frame]

    # Perfect predictions: every count below is exact.
    for validity, valid in (("all4", valid4), ("wh", valid_wh)):
      official = metrics.sequence_curves(gt, gt, absent, validity=validity)
      pyt = metrics.sequence_curves(gt, gt, absent, validity=validity, protocol="pytracking")
      for c in (official, pyt):
        assert c["success"][0] == pytest.approx(valid.sum() / n)
        assert c["success"][-1] == 0.0
        assert c["norm_precision"][0] == pytest.approx(present.sum() / n)
      assert official["precision"][0] == pytest.approx(present.sum() / n)
      assert pyt["precision"][0] == pytest.approx(valid.sum() / n)

    # A noisy tracker: gt + gaussian noise scaled by the target size.
    scale = np.abs(gt[:, 2:]).mean() * 0.1
    pred = gt + rng.normal(0.0, scale, size=gt.shape)
    for protocol in metrics.PROTOCOLS:
      c = metrics.sequence_curves(pred, gt, absent, protocol=protocol)
      for key in ("success", "precision", "norm_precision"):
        assert np.all(np.isfinite(c[key]))
        assert np.all((c[key] >= 0.0) & (c[key] <= present.sum() / n + 1e-12))
      assert np.all(np.diff(c["success"]) <= 0.0)
      assert np.all(np.diff(c["precision"]) >= 0.0)
      assert np.all(np.diff(c["norm_precision"]) >= 0.0)
    noisy_curves.append(metrics.sequence_curves(pred, gt, absent))

  s = metrics.summarize(noisy_curves)
  for key in ("auc", "precision", "norm_precision"):
    assert np.isfinite(s[key]) and 0.0 <= s[key] <= 100.0
  assert 10.0 < s["auc"] < PERFECT_AUC
