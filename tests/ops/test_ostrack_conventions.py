"""OSTrack's test-time conventions, each against values worked out by hand from OSTrack's code
(lib/train/data/processing_utils.py `sample_target` + cv2.resize, lib/test/utils/hann.py,
lib/models/layers/head.py `cal_bbox`, lib/test/tracker/ostrack.py `map_box_back`,
lib/utils/box_ops.py `clip_box`). The opt-in parity test (tests/parity) runs OSTrack itself."""

import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import head as head_lib
from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.ops import crop
from lgtrack_jax.ops.window import hann2d, windowed_scores


def _image(h=4, w=4):
  """Pixel (r, c) of channel k holds 10 * r + c + 100 * k: every tap is recognisable."""
  r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([10 * r + c + 100 * k for k in range(3)], -1).astype(np.uint8)


def test_region_side_is_the_ceiling_and_its_place_rounds_half_to_even():
  # sqrt(40 * 30) * 4 = 138.56 -> 139; cx - 69.5 = -39.5 -> -40, cy - 69.5 = -34.5 -> -34.
  region = crop.ostrack_region(jnp.array([10.0, 20.0, 40.0, 30.0]), 4.0)
  np.testing.assert_array_equal(region, [-40.0, -34.0, 139.0])
  # An integer side stays: sqrt(25 * 16) * 2 = 40; cx - 20 = 12.5 - 20 = -7.5 -> -8.
  np.testing.assert_array_equal(crop.ostrack_region(np.array([0.0, 0.0, 25.0, 16.0]), 2.0, np),
                                [-8.0, -12.0, 40.0])


def test_crop_of_the_same_size_copies_and_never_reads_the_last_row_or_column():
  image = _image()
  out = np.asarray(crop.ostrack_crop(jnp.asarray(image), jnp.array([0.0, 0.0, 4.0]), 4))
  expected = image.astype(float)
  expected[3, :] = expected[:, 3] = 0  # x2_pad = max(x2 - W + 1, 0): the last column is padding
  np.testing.assert_array_equal(out, expected)


def test_crop_pads_with_zeros_left_and_above():
  image = _image()
  out = np.asarray(crop.ostrack_crop(jnp.asarray(image), jnp.array([-1.0, -2.0, 4.0]), 4))
  expected = np.zeros((4, 4, 3))
  expected[2:, 1:] = image[:2, :3]
  np.testing.assert_array_equal(out, expected)


def test_downscale_by_two_averages_two_by_two_and_rounds_to_uint8():
  image = _image()
  out = np.asarray(crop.ostrack_crop(jnp.asarray(image), jnp.array([0.0, 0.0, 4.0]), 2))
  # Samples at patch coordinates 0.5 and 2.5: the mean of each 2x2 block of the padded patch.
  p = image.astype(float)
  p[3, :] = p[:, 3] = 0
  blocks = p.reshape(2, 2, 2, 2, 3).mean(axis=(1, 3))
  np.testing.assert_array_equal(out, np.floor(blocks + 0.5))
  assert out[1, 1, 0] == np.floor((22 + 0 + 0 + 0) / 4 + 0.5) == 6  # the padding averaged in
  raw = np.asarray(crop.ostrack_crop(jnp.asarray(image), jnp.array([0.0, 0.0, 4.0]), 2,
                                     quantize=False))
  np.testing.assert_allclose(raw, blocks, atol=1e-4)


def test_upscale_clamps_to_the_patch_border():
  image = _image()
  out = np.asarray(crop.ostrack_crop(jnp.asarray(image), jnp.array([1.0, 1.0, 2.0]), 4,
                                     quantize=False))
  # Patch coordinates -0.25, 0.25, 0.75, 1.25 clamp to 0, 0.25, 0.75, 1 (OpenCV's border rule).
  patch = image[1:3, 1:3, 0].astype(float)
  s = np.array([0.0, 0.25, 0.75, 1.0])
  expected = (patch[0][None] * (1 - s)[:, None] + patch[1][None] * s[:, None])  # rows
  expected = expected[:, 0:1] * (1 - s)[None] + expected[:, 1:2] * s[None]
  np.testing.assert_allclose(out[..., 0], expected, atol=1e-4)


@pytest.mark.parametrize("region", [(-7.0, 3.0, 19.0), (5.0, -4.0, 11.0), (12.0, 9.0, 9.0)])
def test_a_padded_buffer_and_a_window_give_the_frames_crop(region):
  """The tracker's two ways of handing frames over: zero-padded buffers (valid size hw) and
  windows (origin); pixels beyond the frame, in the buffer, are never read."""
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (17, 21, 3)).astype(np.uint8)
  region = jnp.array(region)
  plain = crop.ostrack_crop(jnp.asarray(frame), region, 16)
  buffer = np.full((32, 32, 3), 255, np.uint8)
  buffer[:17, :21] = frame
  padded = crop.ostrack_crop(jnp.asarray(buffer), region, 16, jnp.array([17, 21]))
  np.testing.assert_array_equal(padded, plain)
  r0, r1, c0, c1 = crop.window_bounds(region, (17, 21))
  windowed = crop.ostrack_crop(jnp.asarray(frame[r0:r1, c0:c1]), region, 16, jnp.array([17, 21]),
                               jnp.array([r0, c0]))
  np.testing.assert_array_equal(windowed, plain)


def test_hann_window_is_ostracks_centred_cosine():
  # hann1d(n) = 0.5 * (1 - cos(2 pi k / (n + 1))), k = 1..n; 2d: the outer product.
  w = hann2d(4, 4)
  k = np.arange(1, 5)
  h1 = 0.5 * (1 - np.cos(2 * np.pi * k / 5))
  np.testing.assert_allclose(w, np.outer(h1, h1), rtol=1e-6)
  np.testing.assert_allclose(h1, [0.345492, 0.904508, 0.904508, 0.345492], atol=1e-6)


def test_window_multiplies_the_clamped_score_and_breaks_saturated_ties():
  window = jnp.asarray(hann2d(4, 4))
  logits = jnp.full((1, 4, 4), 30.0)  # every cell saturates: sigmoid -> 1 - 1e-4 after the clamp
  scores = windowed_scores(logits, window, None)
  np.testing.assert_allclose(scores[0], (1 - 1e-4) * np.asarray(window), rtol=1e-6)
  # Ties go to the first maximum in row-major order, as torch.max over the flattened map.
  np.testing.assert_array_equal(head_lib.argmax_cells(scores), [[1, 1]])
  logits = jnp.zeros((1, 4, 4)).at[0, 0, 0].set(2.0)
  # Multiplied: 0.881 * 0.119 = 0.105 at the corner against 0.5 * 0.818 = 0.409 at the centre.
  np.testing.assert_array_equal(head_lib.argmax_cells(windowed_scores(logits, window, None)),
                                [[1, 1]])
  # The blend (1 - 0.0) * score keeps the raw peak.
  np.testing.assert_array_equal(head_lib.argmax_cells(windowed_scores(logits, window, 0.0)),
                                [[0, 0]])


def test_peak_cell_decode():
  # cal_bbox: idx = argmax; (idx_x + offset_x) / W, (idx_y + offset_y) / H, then the size there.
  score = np.zeros((1, 16, 16), np.float32)
  score[0, 3, 5] = 1.0
  size = np.zeros((1, 16, 16, 2), np.float32)
  offset = np.zeros((1, 16, 16, 2), np.float32)
  size[0, 3, 5] = (0.25, 0.125)
  offset[0, 3, 5] = (0.2, 0.7)
  box = head_lib.decode_boxes(jnp.asarray(score), jnp.asarray(size), jnp.asarray(offset))
  np.testing.assert_allclose(box, [[5.2 / 16, 3.7 / 16, 0.25, 0.125]], rtol=1e-6)


def test_map_back_goes_through_the_square_centred_on_the_last_box():
  # map_box_back: cx = cx_prev - side / 2 + cx_crop * side; the crop's rounded x0 plays no part.
  prev = jnp.array([100.3, 50.0, 20.0, 41.0])  # centre (110.3, 70.5)
  side = crop.ostrack_region(prev, 4.0)[2]  # ceil(sqrt(820) * 4) = ceil(114.54) = 115
  assert side == 115
  box = crop.box_from_crop(jnp.array([0.6, 0.5, 0.2, 0.1]), crop.centred_region(prev, side))
  cx, cy, w, h = 110.3 - 57.5 + 0.6 * 115, 70.5, 23.0, 11.5
  np.testing.assert_allclose(box, [cx - w / 2, cy - h / 2, w, h], rtol=1e-6)


@pytest.mark.parametrize("box,expected", [
    ((-5.0, 10.0, 30.0, 20.0), (0.0, 10.0, 25.0, 20.0)),
    ((95.0, 75.0, 20.0, 20.0), (90.0, 70.0, 10.0, 10.0)),  # x1 <= W - margin, x2 <= W
    ((-50.0, 0.0, 20.0, 20.0), (0.0, 0.0, 10.0, 20.0)),  # x2 >= margin
    ((40.0, 30.0, 3.0, 2.0), (40.0, 30.0, 10.0, 10.0)),  # w, h >= margin
])
def test_clip_box_with_ostracks_margin(box, expected):
  clipped = box_ops.clip_box_margin(jnp.array(box), 100.0, 80.0, 10.0)
  np.testing.assert_allclose(clipped, expected)


def test_cv2_linear_taps_worked_by_hand():
  # side 3 -> 2 columns: coordinates 0.25 and 1.75, weights in 2048ths.
  i0, i1, a0, a1 = (np.asarray(v) for v in crop.cv2_linear_taps(jnp.int32(3), 2, clamp=True))
  np.testing.assert_array_equal(np.stack([i0, i1, a0, a1]), [[0, 1], [1, 2], [1536, 512],
                                                             [512, 1536]])
  # side 2 -> 4 rows: coordinates -0.25, 0.25, 0.75, 1.25. Rows keep their fraction beyond the
  # border (both taps on the border row); columns (clamp) take the border pixel with weight 1.
  rows = np.stack([np.asarray(v) for v in crop.cv2_linear_taps(jnp.int32(2), 4, clamp=False)])
  np.testing.assert_array_equal(rows, [[0, 0, 0, 1], [0, 1, 1, 1], [512, 1536, 512, 1536],
                                       [1536, 512, 1536, 512]])
  cols = np.stack([np.asarray(v) for v in crop.cv2_linear_taps(jnp.int32(2), 4, clamp=True)])
  np.testing.assert_array_equal(cols, [[0, 0, 0, 1], [1, 1, 1, 1], [2048, 1536, 512, 2048],
                                       [0, 512, 1536, 0]])


def _opencv_resize_u8(patch: np.ndarray, out: int) -> np.ndarray:
  """cv2.resize(patch, (out, out), INTER_LINEAR) for uint8, from OpenCV's resize.cpp as
  documented there: float32 coordinates, 11-bit weights (columns clamped, rows not), integer
  horizontal sums, and the SIMD vertical kernel ((S >> 4) * beta >> 16, summed, (v + 2) >> 2)."""
  def taps(n, clamp):
    f = ((np.arange(out) + 0.5) * (n / out) - 0.5).astype(np.float32)
    s = np.floor(f).astype(int)
    frac = f - s
    if clamp:
      frac[(s < 0) | (s >= n - 1)] = 0
      s = np.clip(s, 0, n - 1)
    return (np.clip(s, 0, n - 1), np.clip(s + 1, 0, n - 1),
            np.round((1 - frac) * 2048).astype(int), np.round(frac * 2048).astype(int))
  n = patch.shape[0]
  c0, c1, a0, a1 = taps(n, True)
  r0, r1, b0, b1 = taps(n, False)
  p = patch.astype(np.int64)
  rows = p[:, c0] * a0[None, :, None] + p[:, c1] * a1[None, :, None]
  v = ((rows[r0] >> 4) * b0[:, None, None] >> 16) + ((rows[r1] >> 4) * b1[:, None, None] >> 16)
  return np.clip((v + 2) >> 2, 0, 255)


@pytest.mark.parametrize("side, out", [(37, 16), (9, 16), (32, 16), (16, 16), (23, 8)])
def test_quantized_crop_is_opencvs_fixed_point_resize(side, out):
  rng = np.random.default_rng(side)
  frame = rng.integers(0, 256, (60, 60, 3)).astype(np.uint8)
  got = np.asarray(crop.ostrack_crop(jnp.asarray(frame), jnp.array([5.0, 7.0, float(side)]), out))
  patch = frame[7:7 + side, 5:5 + side]  # inside the frame: no padding
  np.testing.assert_array_equal(got, _opencv_resize_u8(patch, out))
  if side not in (16, 32):  # the copy and OpenCV's 2x INTER_AREA shortcut round exactly
    floats = np.asarray(crop.ostrack_crop(jnp.asarray(frame), jnp.array([5.0, 7.0, float(side)]),
                                          out, quantize=False))
    assert np.any(np.floor(floats + 0.5) != got)  # rounding the float resize is not the same
