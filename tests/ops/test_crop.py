"""The in-jit crop matches the training pipeline's pixel convention exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from input_pipeline import sampler
from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.ops import crop
from lgtrack_jax.ops.window import hann2d


@pytest.mark.parametrize("x0,y0,side", [(10.3, -7.2, 41.7), (-30.0, 50.5, 120.0), (0.0, 0.0, 8.0)])
def test_crop_matches_reference_convention(x0, y0, side):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (72, 96, 3)).astype(np.uint8)
  ours = jax.jit(crop.crop_and_resize, static_argnums=2)(
      jnp.asarray(image), jnp.array([x0, y0, side], jnp.float32), 32)
  ref = sampler.bilinear_crop_reference(image, x0, y0, side, side, 32, 32)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-3)


def test_crop_matches_tensorflow_crop_and_resize():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (72, 96, 3)).astype(np.uint8)
  x0, y0, side, out = 20.5, -3.25, 50.0, 24
  box = sampler.crop_and_resize_box(x0, y0, side, side, out, out, 72, 96)
  tf_crop = tf.image.crop_and_resize(image[None].astype(np.float32), [list(map(float, box))],
                                     [0], [out, out], extrapolation_value=0.0)[0].numpy()
  ours = crop.crop_and_resize(jnp.asarray(image), jnp.array([x0, y0, side]), out)
  np.testing.assert_allclose(np.asarray(ours), tf_crop, atol=1e-2)


def test_resize_full_matches_reference():
  rng = np.random.default_rng(2)
  image = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
  ours = crop.resize_full(jnp.asarray(image), 32)
  ref = sampler.bilinear_crop_reference(image, 0.0, 0.0, 80.0, 60.0, 32, 32)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-3)


def test_box_round_trip_and_region():
  box = jnp.array([30.0, 40.0, 20.0, 10.0])
  region = crop.crop_region(box, 4.0)
  np.testing.assert_allclose(region[2], np.sqrt(200) * 4, rtol=1e-6)
  inner = crop.box_to_crop(box, region)
  np.testing.assert_allclose(inner[:2], [0.5, 0.5], atol=1e-6)
  np.testing.assert_allclose(crop.box_from_crop(inner, region), box, atol=1e-4)


def test_box_formats_and_clip():
  b = jnp.array([[10.0, 20.0, 30.0, 40.0]])
  np.testing.assert_allclose(box_ops.cxcywh_to_xywh(box_ops.xywh_to_cxcywh(b)), b)
  np.testing.assert_allclose(box_ops.xyxy_to_xywh(box_ops.xywh_to_xyxy(b)), b)
  np.testing.assert_allclose(box_ops.xyxy_to_cxcywh(box_ops.cxcywh_to_xyxy(b)), b)
  clipped = box_ops.clip_xywh_to_image(jnp.array([[-5.0, 90.0, 200.0, 0.0]]), 100.0, 95.0)
  np.testing.assert_allclose(clipped, [[0.0, 90.0, 100.0, 1.0]])


def test_hann_window():
  w = hann2d(8, 8)
  assert w.shape == (8, 8) and (w > 0).all() and w.max() <= 1
  assert w[3:5, 3:5].min() == w.max()
