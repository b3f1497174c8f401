"""GOT-10k's protocol against its toolkit (PyPI `got10k`, a test dependency) and hand-built cases."""

import numpy as np
import pytest
from got10k.utils.metrics import rect_iou

from lgtrack_jax.evaluation import got10k_metrics as g
from lgtrack_jax.evaluation import metrics


def _random_boxes(rng, n, w=640, h=480):
  xy = rng.uniform(-50, [w, h], (n, 2))
  wh = rng.uniform(1, [w / 2, h / 2], (n, 2))
  return np.concatenate([xy, wh], 1)


def test_iou_agrees_with_the_toolkit_on_random_boxes():
  rng = np.random.default_rng(0)
  a, b = _random_boxes(rng, 2000), _random_boxes(rng, 2000)
  np.testing.assert_allclose(g.iou(a, b), rect_iou(a.copy(), b.copy()), rtol=0, atol=1e-12)
  # With the image bound: the toolkit clips both boxes in place before the IoU.
  np.testing.assert_allclose(g.iou(g.clip_to_image(a, 640, 480), g.clip_to_image(b, 640, 480)),
                             rect_iou(a.copy(), b.copy(), bound=(640, 480)), atol=1e-12)
  # The OPE IoU is the same quantity without the eps and the clipping to [0, 1].
  np.testing.assert_allclose(metrics.iou(a, b), rect_iou(a.copy(), b.copy()), atol=1e-9)


def test_split_scores_equal_the_toolkit_val_evaluation():
  """The toolkit's val path: rect_iou(pred[1:], gt[1:], bound) on cover > 0 frames, pooled."""
  rng = np.random.default_rng(1)
  ours, theirs = [], []
  for n in (30, 80, 5):
    gt = _random_boxes(rng, n)
    pred = gt + rng.normal(0, 20, gt.shape)
    cover = rng.integers(0, 9, n)
    ours.append(g.sequence_ious(pred, gt, cover, (640, 480)))
    theirs.append(rect_iou(pred[1:].copy(), gt[1:].copy(), bound=(640, 480))[cover[1:] > 0])
  s = g.summarize(ours)
  pooled = np.concatenate(theirs)
  assert s["ao"] == pytest.approx(100 * pooled.mean())
  assert s["sr50"] == pytest.approx(100 * (pooled > 0.5).mean())
  assert s["sr75"] == pytest.approx(100 * (pooled > 0.75).mean())
  assert s["num_frames"] == pooled.size


def test_hand_built_rules():
  gt = np.array([[10, 10, 20, 20]] * 4, np.float64)
  pred = gt.copy()
  pred[0] = [500, 500, 5, 5]  # frame 0 is dropped, whatever it holds
  pred[2] = [20, 10, 20, 20]  # IoU 1/3 ...
  cover = np.array([8, 8, 0, 8])  # ... but the target is fully occluded there: not counted
  ious = g.sequence_ious(pred, gt, cover, (100, 100))
  np.testing.assert_allclose(ious, [1.0, 1.0])
  # Pooling: a 1-frame sequence at IoU 0 against the 2 frames above -> AO 2/3, not (1 + 0) / 2.
  zero = g.sequence_ious(np.array([[0, 0, 5, 5], [90, 90, 5, 5]], np.float64),
                         np.array([[0, 0, 5, 5], [0, 0, 5, 5]], np.float64), np.array([8, 8]),
                         (100, 100))
  s = g.summarize([ious, zero])
  assert s["ao"] == pytest.approx(200 / 3) and s["sr50"] == pytest.approx(200 / 3)
  # Boxes leaving the image are clipped first: half outside on the right -> the inside half.
  np.testing.assert_allclose(g.clip_to_image(np.array([[90.0, 0, 20, 10]]), 100, 100),
                             [[90, 0, 10, 10]])
  with pytest.raises(ValueError, match="one prediction per frame"):
    g.sequence_ious(pred[:3], gt, cover, (100, 100))
