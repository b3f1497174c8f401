"""Square search/template crops around a box, resized, inside the jit; the crop convention.

Two conventions live here. The tracker's default is OSTrack's test-time crop (`ostrack_region`,
`ostrack_crop`: `sample_target` in OSTrack's lib/train/data/processing_utils.py, then
`cv2.resize`), which every one-stream tracker since 2022 inherits, so that scores are comparable
to theirs. The continuous crop (`crop_region`, `crop_and_resize`) is the training sampler's, and
the tracker's with `eval.crop='continuous'`.

Continuous crop: the one definition of its pixel convention, used by the tf.data pipeline
(`input_pipeline/pipeline.py`, training) and the tracker. Pixel k has its centre at coordinate k
and a box x, y, w, h covers [x, x + w). A crop region [x0, x0 + S) is resampled to `out` pixels
by sampling output pixel u at source coordinate x0 + (u + 0.5) * S / out - 0.5
(`sample_position`), bilinearly; samples outside [0, W - 1] x [0, H - 1] are 0, as in
`tf.image.crop_and_resize` with extrapolation_value 0. The region is the square of side
sqrt(w * h) * factor centred on the box (`region_around`). `bilinear_crop_reference` is the numpy
spec the tests hold both samplers to. Keeping both sides on these functions is what makes a model
trained on tf.data crops see the same pixels when tracking.

The geometry functions (`sample_position`, `crop_sample_span`, `crop_and_resize_box`, and
`region_around` / `crop_region` through `xp`) use only arithmetic operators, so they accept Python
floats, numpy, TF or jnp values: the tf.data graph calls them on TF tensors. In the jitted crops,
arithmetic is in JAX's default float type (float32; float64 under `jax_enable_x64`, which the
tests use to compare code paths exactly).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


def crop_region(box_xywh: jnp.ndarray, factor: float, xp=jnp) -> jnp.ndarray:
  """Square region around a box: [..., 4] xywh pixels -> [..., 3] (x0, y0, side).

  side = sqrt(w * h) * factor, centred on the box centre (OSTrack's search-area rule). `xp`:
  the array module (numpy computes it on the host).
  """
  center = box_xywh[..., :2] + box_xywh[..., 2:] / 2
  return region_around(center, box_xywh[..., 2:], factor, xp)


def region_around(center_xy: jnp.ndarray, wh: jnp.ndarray, factor: float, xp=jnp) -> jnp.ndarray:
  """The square region of side sqrt(w * h) * factor centred on center_xy [..., 2] -> [..., 3]
  (x0, y0, side), for a box of size wh [..., 2] (pixels).

  The area is clamped at 1 px^2, so a degenerate box still gives a region. `xp`: the array
  module (numpy on the host, `tf` in the training pipeline, which jitters the centre and size
  itself and so starts from them rather than from a box).
  """
  side = xp.sqrt(xp.maximum(wh[..., 0] * wh[..., 1], 1.0)) * factor
  return xp.stack([center_xy[..., 0] - side / 2, center_xy[..., 1] - side / 2, side], axis=-1)


def ostrack_region(box_xywh: jnp.ndarray, factor: float, xp=jnp) -> jnp.ndarray:
  """OSTrack's crop placement: [..., 4] xywh pixels -> [..., 3] (x0, y0, side), integer valued.

  side = ceil(sqrt(w * h) * factor) (at least 1), and x0 = round(cx - side / 2), y0 likewise,
  rounding half to even as Python's `round`. `xp`: the array module (numpy on the host).
  """
  side = xp.maximum(xp.ceil(xp.sqrt(box_xywh[..., 2] * box_xywh[..., 3]) * factor), 1.0)
  x0 = xp.round(box_xywh[..., 0] + 0.5 * box_xywh[..., 2] - 0.5 * side)
  y0 = xp.round(box_xywh[..., 1] + 0.5 * box_xywh[..., 3] - 0.5 * side)
  return xp.stack([x0, y0, side], axis=-1)


def centred_region(box_xywh: jnp.ndarray, side: jnp.ndarray) -> jnp.ndarray:
  """The square of `side` [...] centred exactly on the box [..., 4] -> [..., 3] (x0, y0, side).

  OSTrack maps its boxes back through this square (`map_box_back`: the previous box's centre
  minus half the crop side), not through the crop's pixel-rounded placement.
  """
  return jnp.stack([box_xywh[..., 0] + 0.5 * box_xywh[..., 2] - 0.5 * side,
                    box_xywh[..., 1] + 0.5 * box_xywh[..., 3] - 0.5 * side, side], axis=-1)


def ostrack_crop(image: jnp.ndarray, region: jnp.ndarray, out: int, hw: jnp.ndarray | None = None,
                 origin: jnp.ndarray | None = None, quantize: bool = True) -> jnp.ndarray:
  """OSTrack's test-time crop of image [H, W, C] uint8 at `ostrack_region` (x0, y0, side) [3] ->
  [out, out, C] float, pixel values in [0, 255].

  What `sample_target` then `cv2.resize(..., INTER_LINEAR)` compute:
  - the side x side patch at (x0, y0) is cut from the frame and zero padded where it leaves the
    frame. Its padding arithmetic (`x2_pad = max(x2 - W + 1, 0)`) never copies the frame's last
    column or last row: those read as padding too;
  - the patch is resized bilinearly with half-pixel centres: output pixel u samples patch
    coordinate (u + 0.5) * side / out - 0.5. Columns outside [0, side - 1] take the border
    column (OpenCV clamps the coordinate); rows outside keep their weights over the border row
    twice (OpenCV clamps only the row index).
  - `quantize` (the default): OpenCV's 8-bit arithmetic bit for bit (`cv2_linear_taps`): 11-bit
    fixed-point weights, the horizontal pass in integers, the vertical pass as its SIMD kernel
    computes it (`VResizeLinearVec_32s8u`: each row's sum shifted right by 4, multiplied by the
    row weight keeping the high 16 bits, the two added, then rounded and shifted right by 2).
    This covers the 2x downscale that OpenCV sends to INTER_AREA (the same sums) and the copy at
    side == out. False: the same taps in floating point, unrounded.
  `hw`, `origin`: a padded frame's valid size and a window's place in its frame, as in `resample`.
  """
  h, w = _size(image, hw)
  side = region[2].astype(jnp.int32)
  (r0, r1, b0, b1), (c0, c1, a0, a1) = (cv2_linear_taps(side, out, clamp=axis == 0)
                                        for axis in (1, 0))
  start = region[:2].astype(jnp.int32)  # (x0, y0), integer valued
  oy = None if origin is None else origin[0]
  ox = None if origin is None else origin[1]
  rows = [_taps(start[1] + r, h, oy, image.shape[0]) for r in (r0, r1)]
  cols = [_taps(start[0] + c, w, ox, image.shape[1]) for c in (c0, c1)]
  dtype = jnp.int32 if quantize else float
  img = image.astype(dtype)
  a0, a1, b0, b1 = (v.astype(dtype)[:, None] for v in (a0, a1, b0, b1))
  a0, a1 = a0[None], a1[None]

  def row_pass(r):  # [out, out, C]: one output row's horizontal sums, weights in 1/2048ths
    (ri, rv) = r
    (ci0, cv0), (ci1, cv1) = cols
    left = img[ri][:, ci0] * (rv[:, None] & cv0[None, :])[..., None]
    right = img[ri][:, ci1] * (rv[:, None] & cv1[None, :])[..., None]
    return left * a0 + right * a1

  top, bottom = row_pass(rows[0]), row_pass(rows[1])
  if not quantize:
    return (top * b0[..., None] + bottom * b1[..., None]) / 2048.0 ** 2
  v = (((top >> 4) * b0[..., None]) >> 16) + (((bottom >> 4) * b1[..., None]) >> 16)
  return jnp.clip((v + 2) >> 2, 0, 255).astype(float)


def cv2_linear_taps(side: jnp.ndarray, out: int, clamp: bool
                    ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """OpenCV's INTER_LINEAR taps along one axis, resizing `side` [] int32 source pixels to `out`:
  (i0, i1) [out] int32 source indices in [0, side - 1] and (a0, a1) [out] int32 weights in
  2048ths (`resizeGeneric_`'s fixed-point coefficients).

  The source coordinate (u + 0.5) * side / out - 0.5 is OpenCV's double expression rounded to
  float32; it is computed here as the quotient of two exact integers, which float32 division
  rounds correctly, so it is the same float. `clamp` (columns): coordinates below 0 or from
  side - 1 on take the border pixel with weight 1; rows (`clamp` False) keep their fraction and
  clamp only the indices.
  """
  u = jnp.arange(out, dtype=jnp.int32)
  f = ((2 * u + 1) * side - out).astype(jnp.float32) / jnp.float32(2 * out)
  s = jnp.floor(f)
  frac = f - s
  s = s.astype(jnp.int32)
  if clamp:
    edge = (s < 0) | (s >= side - 1)
    frac = jnp.where(edge, 0.0, frac)
    s = jnp.where(s < 0, 0, jnp.minimum(s, side - 1))
  a1 = jnp.round(frac * 2048).astype(jnp.int32)  # saturate_cast<short>: round half to even
  a0 = jnp.round((1 - frac) * 2048).astype(jnp.int32)
  return jnp.clip(s, 0, side - 1), jnp.clip(s + 1, 0, side - 1), a0, a1


def _taps(i: jnp.ndarray, n: jnp.ndarray, start: jnp.ndarray | None, size: int
          ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Frame indices i [m] int32 of a frame side n -> (indices into a buffer of `size` holding the
  frame from `start` on (None: from 0), valid [m] bool). `ostrack_crop` reads frame pixel i
  unless it is padding: i < 0, or i >= n - 1 (`sample_target` never copies the last one)."""
  valid = (i >= 0) & (i <= n - 2)
  if start is not None:
    i = i - start
  return jnp.clip(i, 0, size - 1), valid


def sample_position(start: Any, extent: Any, out: int, u: Any) -> Any:
  """Source coordinate (index space) that output pixel u of a crop samples, along one axis.

  The convention's one formula: the region [start, start + extent) (continuous pixels) resized
  to `out` pixels samples output pixel u at start + (u + 0.5) * extent / out - 0.5, i.e. samples
  extent / out apart, the first half a step in. Operators only: any array type, any shape of u.
  """
  # extent / out first: the tf.data pipeline has always computed the step this way, so its crops
  # stay bit for bit what they were.
  return start + (u + 0.5) * (extent / out) - 0.5


def crop_sample_span(start: Any, extent: Any, out_size: int) -> tuple[Any, Any]:
  """First and last sample position of a crop along one axis, in index space.

  Args:
    start: left (top) edge x0 of the crop region in continuous pixel coordinates.
    extent: region size S in pixels (the region is [x0, x0 + S)).
    out_size: output pixels along this axis.

  Returns:
    (first, last): index-space source coordinates of output pixels 0 and out_size - 1
    (`sample_position`), S / out_size apart per pixel.
  """
  return (sample_position(start, extent, out_size, 0),
          sample_position(start, extent, out_size, out_size - 1))


def sample_coords(start: jnp.ndarray, extent: jnp.ndarray, out: int) -> jnp.ndarray:
  """Source coordinates [out] of all output pixels of region [start, start + extent)."""
  return sample_position(start, extent, out, jnp.arange(out, dtype=float))


def crop_and_resize_box(x0: Any, y0: Any, width: Any, height: Any, out_h: int, out_w: int,
                        image_h: Any, image_w: Any) -> tuple[Any, Any, Any, Any]:
  """`tf.image.crop_and_resize` box (y1, x1, y2, x2) sampling the region per `crop_sample_span`.

  crop_and_resize puts its first/last samples at y1 * (H - 1) and y2 * (H - 1) (same for x),
  so the normalised box is the sample span divided by (H - 1). Images of size 1 along an axis
  use a divisor of 1 (every sample then reads pixel 0 or the extrapolation value).

  Args:
    x0, y0: top-left of the region [x0, x0 + width) x [y0, y0 + height), continuous pixels.
    width, height: region size in pixels.
    out_h, out_w: output size.
    image_h, image_w: source image size.

  Returns:
    (y1, x1, y2, x2) for crop_and_resize's `boxes` argument.
  """
  x_first, x_last = crop_sample_span(x0, width, out_w)
  y_first, y_last = crop_sample_span(y0, height, out_h)
  dx = _at_least_one(image_w - 1)
  dy = _at_least_one(image_h - 1)
  return y_first / dy, x_first / dx, y_last / dy, x_last / dx


def _at_least_one(v: Any) -> Any:
  # max(v, 1) with operators only, so numpy, TF and jnp values all pass through.
  return (v + 1 + abs(v - 1)) / 2


def bilinear_crop_reference(image: np.ndarray, x0: float, y0: float, width: float,
                            height: float, out_h: int, out_w: int) -> np.ndarray:
  """Direct numpy implementation of the crop convention (the spec, for tests).

  Both samplers, `crop_and_resize` (tracking) and the tf.data pipeline's
  `tf.image.crop_and_resize` through `crop_and_resize_box` (training), are tested against it.

  Args:
    image: [H, W, C] any numeric dtype.
    x0, y0, width, height: crop region in continuous pixel coordinates.
    out_h, out_w: output size.

  Returns:
    [out_h, out_w, C] float32; samples outside [0, W - 1] x [0, H - 1] are 0 (as
    crop_and_resize with extrapolation_value 0), inside ones are bilinear.
  """
  img = np.asarray(image, np.float32)
  h, w = img.shape[:2]
  ys = sample_position(y0, height, out_h, np.arange(out_h))
  xs = sample_position(x0, width, out_w, np.arange(out_w))

  def taps(v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Lower/upper neighbour, weight of the upper one, and whether v reads the image at all.
    inside = (v >= 0) & (v <= n - 1)
    lo = np.floor(np.clip(v, 0, n - 1)).astype(np.int64)
    return lo, np.minimum(lo + 1, n - 1), np.clip(v, 0, n - 1) - lo, inside

  yl, yh, fy, y_in = taps(ys, h)
  xl, xh, fx, x_in = taps(xs, w)
  fx = fx[None, :, None]
  top = img[yl][:, xl] * (1 - fx) + img[yl][:, xh] * fx
  bottom = img[yh][:, xl] * (1 - fx) + img[yh][:, xh] * fx
  out = top * (1 - fy[:, None, None]) + bottom * fy[:, None, None]
  return (out * (y_in[:, None] & x_in[None, :])[..., None]).astype(np.float32)


def _size(image: jnp.ndarray, hw: jnp.ndarray | None) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The valid (height, width) of `image`: its shape, or `hw` [2] int32 for a zero-padded frame."""
  if hw is None:
    return jnp.int32(image.shape[0]), jnp.int32(image.shape[1])
  return hw[0], hw[1]


def resample(image: jnp.ndarray, ys: jnp.ndarray, xs: jnp.ndarray,
             hw: jnp.ndarray | None = None, origin: jnp.ndarray | None = None) -> jnp.ndarray:
  """Bilinear samples of image [H, W, C] at the grid ys [Ho] x xs [Wo] -> [Ho, Wo, C] float.

  Samples outside the image are 0. `hw` [2] int32: the image's valid size when it is the top-left
  corner of a larger padded buffer (one compilation serves every frame size up to the buffer's);
  pixels beyond it are never read. `origin` [2] int32 (row, column): `image` is a window of a
  larger frame whose pixel (row, column) is image[0, 0]; ys, xs and hw are then in the frame's
  coordinates, and the samples are the frame's wherever the window holds every pixel they read
  (`window_bounds`). Done as one gather of the 4 neighbours: cost O(Ho * Wo), independent of the
  frame size.
  """
  h, w = _size(image, hw)
  img = image.astype(float)
  y0 = jnp.floor(ys)
  x0 = jnp.floor(xs)
  wy = (ys - y0)[:, None, None]
  wx = (xs - x0)[None, :, None]
  y0i = jnp.clip(y0.astype(jnp.int32), 0, h - 1)
  x0i = jnp.clip(x0.astype(jnp.int32), 0, w - 1)
  y1i = jnp.clip(y0i + 1, 0, h - 1)
  x1i = jnp.clip(x0i + 1, 0, w - 1)
  if origin is not None:  # frame rows/columns -> the window's
    y0i, y1i = (jnp.clip(i - origin[0], 0, image.shape[0] - 1) for i in (y0i, y1i))
    x0i, x1i = (jnp.clip(i - origin[1], 0, image.shape[1] - 1) for i in (x0i, x1i))
  top = img[y0i][:, x0i] * (1 - wx) + img[y0i][:, x1i] * wx
  bottom = img[y1i][:, x0i] * (1 - wx) + img[y1i][:, x1i] * wx
  out = top * (1 - wy) + bottom * wy
  inside = ((ys >= 0) & (ys <= h - 1))[:, None] & ((xs >= 0) & (xs <= w - 1))[None, :]
  return jnp.where(inside[..., None], out, 0.0)


def crop_and_resize(image: jnp.ndarray, region: jnp.ndarray, out: int,
                    hw: jnp.ndarray | None = None, origin: jnp.ndarray | None = None
                    ) -> jnp.ndarray:
  """Crops the square region (x0, y0, side) [3] of image [H, W, C] to [out, out, C] float.

  `hw`: valid size of a padded image, `origin`: where a window sits in its frame, as in
  `resample`.
  """
  ys = sample_coords(region[1], region[2], out)
  xs = sample_coords(region[0], region[2], out)
  return resample(image, ys, xs, hw, origin)


def window_bounds(region, frame_hw, margin: int = 2) -> tuple[int, int, int, int]:
  """Rows [r0, r1) and columns [c0, c1) of a frame of size frame_hw (h, w) that cropping
  `region` (x0, y0, side) reads, on the host (floats): with `margin` pixels to spare for the
  device recomputing the region in float32. Empty (r0 == r1) when the region misses the frame."""
  x0, y0, side = (float(v) for v in region)
  h, w = frame_hw
  # Samples lie in [start - 0.5, start + side - 0.5]; bilinear reads floor(.) and floor(.) + 1.
  r0 = min(max(int(np.floor(y0)) - margin, 0), h)
  r1 = max(min(int(np.ceil(y0 + side)) + margin, h), r0)
  c0 = min(max(int(np.floor(x0)) - margin, 0), w)
  c1 = max(min(int(np.ceil(x0 + side)) + margin, w), c0)
  return r0, r1, c0, c1


def resize_full(image: jnp.ndarray, out: int, hw: jnp.ndarray | None = None) -> jnp.ndarray:
  """The whole frame [H, W, C] resized to [out, out, C] (no aspect preservation; grounding input).

  `hw`: valid size of a padded image, as in `resample`.
  """
  h, w = _size(image, hw)
  ys = sample_coords(jnp.zeros((), float), h.astype(float), out)
  xs = sample_coords(jnp.zeros((), float), w.astype(float), out)
  return resample(image, ys, xs, hw)


def box_to_crop(box_xywh: jnp.ndarray, region: jnp.ndarray) -> jnp.ndarray:
  """Pixel xywh box [..., 4] -> normalised cxcywh inside the square region [..., 3]."""
  side = region[..., 2:3]
  c = box_xywh[..., :2] + box_xywh[..., 2:] / 2
  return jnp.concatenate([(c - region[..., :2]) / side, box_xywh[..., 2:] / side], axis=-1)


def box_from_crop(box_cxcywh: jnp.ndarray, region: jnp.ndarray) -> jnp.ndarray:
  """Normalised cxcywh in the square region [..., 3] -> pixel xywh [..., 4]."""
  side = region[..., 2:3]
  c = region[..., :2] + box_cxcywh[..., :2] * side
  wh = box_cxcywh[..., 2:] * side
  return jnp.concatenate([c - wh / 2, wh], axis=-1)
