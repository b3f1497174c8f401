"""Square search/template crops around a box, resized, inside the jit.

Two conventions live here. The tracker's default is OSTrack's test-time crop (`ostrack_region`,
`ostrack_crop`: `sample_target` in OSTrack's lib/train/data/processing_utils.py, then
`cv2.resize`), which every one-stream tracker since 2022 inherits, so that scores are comparable
to theirs. The continuous crop below (`crop_region`, `crop_and_resize`) is the training
sampler's, and the tracker's with `eval.crop='continuous'`.

Continuous crop: pixel convention, shared with `input_pipeline/pipeline.py` (training time): pixel k has its centre
at coordinate k and a box x, y, w, h covers [x, x + w). A crop region [x0, x0 + S) is resampled to
`out` pixels by sampling output pixel u at source coordinate x0 + (u + 0.5) * S / out - 0.5,
bilinearly; samples outside [0, W - 1] x [0, H - 1] are 0, as in `tf.image.crop_and_resize` with
extrapolation_value 0. Arithmetic is in JAX's default float type (float32; float64 under
`jax_enable_x64`, which the tests use to compare code paths exactly). Keeping both sides on this formula is what makes a model trained on tf.data
crops see the same pixels when tracking.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def crop_region(box_xywh: jnp.ndarray, factor: float, xp=jnp) -> jnp.ndarray:
  """Square region around a box: [..., 4] xywh pixels -> [..., 3] (x0, y0, side).

  side = sqrt(w * h) * factor, centred on the box centre (OSTrack's search-area rule). `xp`:
  the array module (numpy computes it on the host).
  """
  side = xp.sqrt(xp.maximum(box_xywh[..., 2] * box_xywh[..., 3], 1.0)) * factor
  cx = box_xywh[..., 0] + box_xywh[..., 2] / 2
  cy = box_xywh[..., 1] + box_xywh[..., 3] / 2
  return xp.stack([cx - side / 2, cy - side / 2, side], axis=-1)


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
  """OSTrack's test-time crop of image [H, W, C] at `ostrack_region` (x0, y0, side) [3] ->
  [out, out, C] float, pixel values in [0, 255].

  What `sample_target` then `cv2.resize(..., INTER_LINEAR)` compute:
  - the side x side patch at (x0, y0) is cut from the frame and zero padded where it leaves the
    frame. Its padding arithmetic (`x2_pad = max(x2 - W + 1, 0)`) never copies the frame's last
    column or last row: those read as padding too;
  - the patch is resized bilinearly with half-pixel centres: output pixel u samples patch
    coordinate (u + 0.5) * side / out - 0.5, clamped to [0, side - 1] (OpenCV replicates the
    patch's border, whose pixels may be padding);
  - `quantize`: rounded to uint8 as cv2 returns it (OpenCV's fixed-point weights are not
    reproduced: a pixel may differ by one level).
  `hw`, `origin`: a padded frame's valid size and a window's place in its frame, as in `resample`.
  """
  h, w = _size(image, hw)
  side = region[2]

  def coords(start):
    return start + jnp.clip(sample_coords(jnp.zeros((), float), side, out), 0.0, side - 1)

  ys, xs = coords(region[1]), coords(region[0])
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  y0i, x0i = y0.astype(jnp.int32), x0.astype(jnp.int32)

  oy = None if origin is None else origin[0]
  ox = None if origin is None else origin[1]
  rows = [_taps(i, h, oy, image.shape[0]) for i in (y0i, y0i + 1)]
  cols = [_taps(i, w, ox, image.shape[1]) for i in (x0i, x0i + 1)]
  img = image.astype(float)

  def pixel(r, c):
    (ri, rv), (ci, cv) = r, c
    return img[ri][:, ci] * (rv[:, None] & cv[None, :])[..., None]

  top = pixel(rows[0], cols[0]) * (1 - wx) + pixel(rows[0], cols[1]) * wx
  bottom = pixel(rows[1], cols[0]) * (1 - wx) + pixel(rows[1], cols[1]) * wx
  patch = top * (1 - wy) + bottom * wy
  return jnp.floor(patch + 0.5) if quantize else patch


def _taps(i: jnp.ndarray, n: jnp.ndarray, start: jnp.ndarray | None, size: int
          ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Frame indices i [m] int32 of a frame side n -> (indices into a buffer of `size` holding the
  frame from `start` on (None: from 0), valid [m] bool). `ostrack_crop` reads frame pixel i
  unless it is padding: i < 0, or i >= n - 1 (`sample_target` never copies the last one)."""
  valid = (i >= 0) & (i <= n - 2)
  if start is not None:
    i = i - start
  return jnp.clip(i, 0, size - 1), valid


def sample_coords(start: jnp.ndarray, extent: jnp.ndarray, out: int) -> jnp.ndarray:
  """Source coordinates of the `out` output pixels of region [start, start + extent): [out]."""
  u = jnp.arange(out, dtype=float)
  return start + (u + 0.5) * extent / out - 0.5


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
