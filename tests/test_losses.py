"""Losses on hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax import losses


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_focal_loss_hand_computed():
  logits = jnp.array([[[1.5, -0.5]]])  # [1, 1, 2]
  target = jnp.array([[[1.0, 0.25]]])
  p0, p1 = _sigmoid(1.5), _sigmoid(-0.5)
  expected = -(np.log(p0) * (1 - p0) ** 2 + np.log(1 - p1) * p1 ** 2 * (1 - 0.25) ** 4)
  loss, _ = losses.focal_loss(logits, target, jnp.ones(1))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # A zero-weight sample contributes nothing (and does not count as a positive).
  loss2, _ = losses.focal_loss(jnp.concatenate([logits, -logits]),
                               jnp.concatenate([target, target]), jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(loss2, expected, rtol=1e-5)


def test_gaussian_heatmap_peaks_at_centre_cell():
  boxes = jnp.array([[0.55, 0.30, 0.3, 0.2], [0.01, 0.99, 0.05, 0.05]])
  h = np.asarray(losses.gaussian_heatmap(boxes, (8, 8)))
  assert h.shape == (2, 8, 8)
  assert h[0, 2, 4] == 1.0 and h[1, 7, 0] == 1.0
  assert (h <= 1).all() and (h == 1).sum() == 2
  assert h[0, 2, 5] > h[0, 2, 7] > 0  # decays with distance


@pytest.mark.parametrize("a,b,giou", [
    ([0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], 1.0),
    # xyxy [0,0,1,1] vs [2,0,3,1]: IoU 0, hull 3, union 2 -> GIoU = -(3 - 2) / 3.
    ([0.5, 0.5, 1.0, 1.0], [2.5, 0.5, 1.0, 1.0], -1 / 3),
    # [0,0,2,2] vs [1,1,3,3]: inter 1, union 7, hull 9 -> 1/7 - 2/9.
    ([1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0], 1 / 7 - 2 / 9),
])
def test_giou_and_l1(a, b, giou):
  l1, giou_loss, metrics = losses.box_losses(jnp.array([a]), jnp.array([b]), jnp.ones(1))
  np.testing.assert_allclose(giou_loss, 1 - giou, atol=1e-5)  # eps 1e-7 in the union
  np.testing.assert_allclose(l1, np.abs(np.array(a) - np.array(b)).sum(), atol=1e-6)
  assert 0 <= float(metrics["iou"]) <= 1


def test_infonce_hand_computed_and_masked():
  v = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  t = jnp.array([[3.0, 0.0], [0.0, 1.0]])
  scale = 2.0  # small enough that the answer is well above float32 resolution
  loss, m = losses.contrastive_loss(v, t, jnp.array([True, True]), jnp.log(scale))
  np.testing.assert_allclose(loss, np.log(np.exp(scale) + 1) - scale, rtol=1e-5)
  np.testing.assert_allclose(m["temperature"], 0.5, rtol=1e-5)
  _, m = losses.contrastive_loss(v, t, jnp.array([True, True]), jnp.log(1 / 0.07))
  np.testing.assert_allclose(m["temperature"], 0.07, rtol=1e-5)
  # Swapped pairs: each row's positive is now the worst match.
  loss_bad, _ = losses.contrastive_loss(v, t[::-1], jnp.array([True, True]), jnp.log(scale))
  np.testing.assert_allclose(loss_bad, np.log(np.exp(scale) + 1), rtol=1e-5)
  # A masked sample is neither anchor nor negative: one valid pair left -> loss 0.
  loss_one, _ = losses.contrastive_loss(v, t[::-1], jnp.array([True, False]), jnp.log(scale))
  np.testing.assert_allclose(loss_one, 0.0, atol=1e-6)


def test_infonce_gradient_finite_for_all_zero_rows():
  """Mode-0 samples have an all-zero sentence vector: their gradient must not be NaN."""
  v = jnp.array([[1.0, 0.5], [0.2, 1.0], [0.3, 0.3]])
  t = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
  g = jax.grad(lambda t: losses.contrastive_loss(v, t, jnp.array([True, True, False]),
                                                 jnp.log(14.0))[0])(t)
  assert np.all(np.isfinite(g))


def test_total_loss_terms(config):
  b, g = 2, config.data.search_size // config.model.patch_size
  outputs = {
      "score_logits": jnp.zeros((b, g, g)), "size": jnp.full((b, g, g, 2), 0.25),
      "offset": jnp.full((b, g, g, 2), 0.5), "vision_tokens": jnp.ones((b, g * g, 4)),
      "text_embed": jnp.ones((b, 4)), "has_text": jnp.array([True, False]),
      "logit_scale": jnp.log(1 / 0.07),
  }
  centre = (g // 2 + 0.5) / g
  batch = {"search_box": jnp.array([[centre, centre, 0.25, 0.25]] * b)}
  loss, m = losses.total_loss(outputs, batch, config.loss)
  # Offset 0.5 in the centre cell and size 0.25 reproduce the target box exactly.
  np.testing.assert_allclose(m["l1"], 0.0, atol=1e-6)
  np.testing.assert_allclose(m["giou"], 0.0, atol=1e-5)  # eps 1e-7 in the union
  np.testing.assert_allclose(m["contrastive"], 0.0, atol=1e-6)  # one sample with text
  np.testing.assert_allclose(loss, config.loss.focal_weight * m["focal"], rtol=1e-5)
