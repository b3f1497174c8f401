"""The crop convention (`ops/crop.py`): its geometry, its numpy spec, and the two samplers held
to it, the in-jit crop (tracking) and the tf.data pipeline's (training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.ops import crop
from lgtrack_jax.ops.window import hann2d


@pytest.mark.parametrize("x0,y0,side", [(10.3, -7.2, 41.7), (-30.0, 50.5, 120.0), (0.0, 0.0, 8.0)])
def test_crop_matches_reference_convention(x0, y0, side):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (72, 96, 3)).astype(np.uint8)
  ours = jax.jit(crop.crop_and_resize, static_argnums=2)(
      jnp.asarray(image), jnp.array([x0, y0, side], jnp.float32), 32)
  ref = crop.bilinear_crop_reference(image, x0, y0, side, side, 32, 32)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-3)


def test_crop_sample_span():
  first, last = crop.crop_sample_span(10.0, 8.0, 4)  # pixels 2 wide: centres 11, 13, 15, 17
  assert (first, last) == (10.5, 16.5)  # ... minus 0.5 in index space
  first, last = crop.crop_sample_span(np.float32(3.0), np.float32(5.0), 1)
  assert first == last == 5.0
  np.testing.assert_array_equal(crop.sample_coords(jnp.float32(10.0), jnp.float32(8.0), 4),
                                [10.5, 12.5, 14.5, 16.5])


def test_crop_geometry_matches_reference():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(0)
  h, w = 37, 53
  image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
  regions = [  # x0, y0, width, height, out_h, out_w
      (5.3, 7.1, 20.0, 20.0, 16, 16),  # inside, upsampled a little
      (-12.5, -4.25, 40.0, 40.0, 24, 24),  # partly outside: zero padding
      (0.0, 0.0, w, h, 32, 32),  # the whole frame, anisotropic (language-only mode)
      (10.0, 3.0, 9.0, 30.0, 7, 11),  # downsampled on one axis
      (20.2, 15.7, 4.0, 4.0, 1, 1),
  ]
  for x0, y0, cw, ch, oh, ow in regions:
    box = crop.crop_and_resize_box(x0, y0, cw, ch, oh, ow, h, w)
    got = tf.image.crop_and_resize(image[None], np.array([box], np.float32), [0], [oh, ow],
                                   method="bilinear", extrapolation_value=0.0)[0].numpy()
    want = crop.bilinear_crop_reference(image, x0, y0, cw, ch, oh, ow)
    assert np.abs(got - want).max() < 1e-3, (x0, y0, cw, ch)
  # Any 1-pixel shift of the convention would be caught.
  shifted = crop.bilinear_crop_reference(image, 5.8, 7.1, 20.0, 20.0, 16, 16)
  assert np.abs(shifted - crop.bilinear_crop_reference(image, 5.3, 7.1, 20.0, 20.0, 16,
                                                       16)).max() > 1.0


@pytest.mark.parametrize("flip", [False, True])
def test_training_and_tracking_crops_agree(flip):
  # The tf.data sampler and the in-jit one, on the same region, against each other and the spec.
  tf = pytest.importorskip("tensorflow")
  from input_pipeline import pipeline  # pylint: disable=import-outside-toplevel
  tf_sampler = pipeline._Sampler  # pylint: disable=protected-access
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (72, 96, 3)).astype(np.uint8)
  box = np.array([30.5, 20.25, 17.0, 11.5], np.float32)
  for factor, out in ((2.0, 24), (4.0, 32), (9.0, 16)):  # inside / partly outside / downscaled
    # No jitter: the training region is then the tracker's region of the box.
    top_left, side = tf_sampler._jittered_region(  # pylint: disable=protected-access
        tf.constant(box), tf.zeros([2]), tf.fill([2], tf.constant(0.5, tf.float64)), factor,
        0.0, 0.0)
    region = crop.crop_region(jnp.asarray(box), factor)
    np.testing.assert_allclose(np.append(top_left.numpy(), side.numpy()), region, rtol=1e-6)
    train = tf_sampler._crop(  # pylint: disable=protected-access
        tf.constant(image), top_left, side, side, out, tf.constant(flip)).numpy()
    track = np.asarray(crop.crop_and_resize(jnp.asarray(image), region, out))
    x0, y0, s = map(float, region)
    spec = crop.bilinear_crop_reference(image, x0, y0, s, s, out, out)
    if flip:
      track, spec = track[:, ::-1], spec[:, ::-1]
    # crop_and_resize's float32 positions, from a box normalised by the image size, are off by a
    # few ulps (measured: <= 4e-3 grey levels here); a half-pixel slip would cost tens.
    np.testing.assert_allclose(track, spec, atol=2e-3, err_msg=str(factor))
    np.testing.assert_allclose(train, spec, atol=1e-2, err_msg=str(factor))
    np.testing.assert_allclose(train, track, atol=1e-2, err_msg=str(factor))


def test_resize_full_matches_reference():
  rng = np.random.default_rng(2)
  image = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
  ours = crop.resize_full(jnp.asarray(image), 32)
  ref = crop.bilinear_crop_reference(image, 0.0, 0.0, 80.0, 60.0, 32, 32)
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
