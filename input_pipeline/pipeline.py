"""The tf.data training pipeline: sample i of the global stream is a pure function of (seed, i).

Every random choice of sample i (sequence, init mode, template and search frames, jitter,
augmentation) comes from stateless Philox draws keyed by [seed, i], so a run resumes exactly at
any step and splits over any number of hosts without iterator state (DESIGN section 5). All of
it runs in the TF graph: no Python in the hot path. This is the only module importing
TensorFlow; the crop geometry it uses lives in `sampler.py` so the JAX tracker can mirror it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from input_pipeline import sampler
from input_pipeline.sources.base import DataError, data_error

try:
  # TF must not grab GPU memory that JAX needs; it only reads and crops images here.
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF devices were already initialised by someone else
  logging.warning("input_pipeline.pipeline: could not hide GPUs from TensorFlow")

# Positions in the per-sample random vectors. All draws of a sample come from one uniform and
# one normal Philox call: a small graph is what makes per-sample work cheap.
_U_SEQ, _U_MODE, _U_TEMPLATE, _U_SEARCH = 0, 1, 2, 3
_U_Z_CENTER, _U_X_CENTER, _U_BRIGHTNESS = slice(4, 6), slice(6, 8), slice(8, 10)
_U_FLIP = 10
_NUM_UNIFORM = 11
_N_Z_SCALE, _N_X_SCALE = slice(0, 2), slice(2, 4)
_NUM_NORMAL = 4
_ALG = "philox"  # explicit, so streams never depend on the device TF would auto-select


def decode_frame(data: tf.Tensor) -> tf.Tensor:
  """Decodes encoded image bytes (JPEG, PNG, BMP, GIF) to [H, W, 3] uint8.

  JPEGs use libjpeg's accurate integer IDCT: TF's default (fast IDCT) differs from Pillow, which
  decodes the frames at tracking time, by up to ~7 grey levels; the accurate one matches it.
  """
  image = tf.cond(
      tf.io.is_jpeg(data),
      lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
      lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
  image.set_shape([None, None, 3])
  return image


class _Sampler:
  """The graph functions turning a global sample index into a training sample."""

  def __init__(self, index: sampler.Index, config: Any, seed: int):
    d = config.data
    probs = np.asarray(d.mode_probs, np.float64)
    if probs.shape != (3,) or (probs < 0).any() or probs.sum() <= 0:
      raise ValueError(f"config.data.mode_probs must be 3 non-negative numbers, got {probs}")
    self.d = d
    self.seed = seed
    self.num_seq = tf.constant(index.num_sequences, tf.int64)
    # Mode = number of cumulative thresholds u has passed: u < c0 -> 0, c0 <= u < c1 -> 1, ...
    self.mode_thresholds = tf.constant(np.cumsum(probs / probs.sum())[:2], tf.float64)
    self.paths = tf.constant([str(p) for p in index.frame_paths], tf.string)
    self.boxes = tf.constant(index.boxes, tf.float32)
    self.vis_start = tf.constant(index.vis_start, tf.int64)
    self.vis_count = tf.constant(index.vis_count, tf.int64)
    self.vis_frames = tf.constant(index.vis_frames, tf.int64)
    self.has_sentence = tf.constant(index.has_sentence, tf.bool)
    self.text_ids = tf.constant(index.text_ids, tf.int32)
    self.text_mask = tf.constant(index.text_mask, tf.int32)

  def draw(self, i: tf.Tensor) -> dict[str, tf.Tensor]:
    """The random numbers and discrete choices of sample i (no file access).

    Args:
      i: scalar int64 global sample index.

    Returns:
      uniform [_NUM_UNIFORM] float64 in [0, 1), normal [_NUM_NORMAL] float32, seq / template /
      search (flat frame indices) scalar int64, mode scalar int32.
    """
    base = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(i, tf.int64)])
    keys = tf.random.experimental.stateless_split(base, num=2, alg=_ALG)
    u = tf.random.stateless_uniform([_NUM_UNIFORM], keys[0], dtype=tf.float64, alg=_ALG)
    normal = tf.random.stateless_normal([_NUM_NORMAL], keys[1], alg=_ALG)

    def uniform_int(slot: int, n: tf.Tensor) -> tf.Tensor:
      # float64 keeps floor(u * n) unbiased for any frame count; the min guards rounding.
      k = tf.cast(tf.floor(u[slot] * tf.cast(n, tf.float64)), tf.int64)
      return tf.minimum(k, n - 1)

    seq = uniform_int(_U_SEQ, self.num_seq)
    mode = tf.reduce_sum(tf.cast(u[_U_MODE] >= self.mode_thresholds, tf.int32))
    mode = tf.where(self.has_sentence[seq], mode, 0)

    vis = tf.slice(self.vis_frames, [self.vis_start[seq]], [self.vis_count[seq]])
    template = vis[uniform_int(_U_TEMPLATE, self.vis_count[seq])]
    # Flat indices are contiguous within a sequence, so frame-number gaps equal flat gaps.
    bounds = tf.reshape(tf.stack([template - self.d.max_gap, template + self.d.max_gap]), [1, 2])
    lo = tf.searchsorted(vis[None], bounds[:, :1], side="left", out_type=tf.int64)[0, 0]
    hi = tf.searchsorted(vis[None], bounds[:, 1:], side="right", out_type=tf.int64)[0, 0]
    search = vis[lo + uniform_int(_U_SEARCH, hi - lo)]
    return {"uniform": u, "normal": normal, "seq": seq, "template": template, "search": search,
            "mode": mode}

  def _read(self, flat: tf.Tensor) -> tf.Tensor:
    """[H, W, 3] uint8 decoded frame (see `decode_frame`)."""
    return decode_frame(tf.io.read_file(self.paths[flat]))

  @staticmethod
  def _jittered_region(box: tf.Tensor, normal: tf.Tensor, uniform: tf.Tensor, factor: float,
                       scale_jitter: float, center_jitter: float) -> tuple[tf.Tensor, tf.Tensor]:
    """OSTrack jitter -> square crop region.

    Args:
      box: [4] float32 x, y, w, h.
      normal: [2] float32 N(0, 1) draws for the scale jitter.
      uniform: [2] float64 U(0, 1) draws for the centre jitter.

    Returns:
      top-left [2] and side S (scalar), float32.
    """
    wh = box[2:]
    center = box[:2] + 0.5 * wh
    wh_j = wh * tf.exp(normal * scale_jitter)
    side = tf.sqrt(wh_j[0] * wh_j[1])
    center_j = center + side * center_jitter * (tf.cast(uniform, tf.float32) - 0.5)
    size = side * factor
    return center_j - 0.5 * size, size

  @staticmethod
  def _crop(image: tf.Tensor, top_left: tf.Tensor, width: tf.Tensor, height: tf.Tensor,
            out: int, flip: tf.Tensor) -> tf.Tensor:
    """Bilinear crop of the region [x0, x0 + width) x [y0, y0 + height), zero outside the image.

    Args:
      image: [H, W, 3] uint8.
      top_left: [2] float32 (x0, y0).
      width, height: float32 scalars.
      out: output side.
      flip: bool scalar, mirror the crop left-right.

    Returns:
      [out, out, 3] float32.
    """
    shape = tf.cast(tf.shape(image), tf.float32)
    y1, x1, y2, x2 = sampler.crop_and_resize_box(
        top_left[0], top_left[1], width, height, out, out, shape[0], shape[1])
    # Swapped x1/x2 make crop_and_resize sample right to left: a flip without an image pass.
    x1, x2 = tf.where(flip, x2, x1), tf.where(flip, x1, x2)
    crop = tf.image.crop_and_resize(image[None], tf.stack([y1, x1, y2, x2])[None], [0],
                                    [out, out], method="bilinear", extrapolation_value=0.0)
    return crop[0]

  @staticmethod
  def _box_in_region(box: tf.Tensor, top_left: tf.Tensor, width: tf.Tensor, height: tf.Tensor,
                     flip: tf.Tensor) -> tf.Tensor:
    """[4] float32 normalised cxcywh of an x, y, w, h box in a (flipped) region; not clipped."""
    scale = tf.stack([width, height])
    center = (box[:2] + 0.5 * box[2:] - top_left) / scale
    cx = tf.where(flip, 1.0 - center[0], center[0])
    return tf.concat([[cx, center[1]], box[2:] / scale], axis=0)

  @staticmethod
  def _to_uint8(image: tf.Tensor, brightness: tf.Tensor) -> tf.Tensor:
    """[..., 3] float32 -> uint8 after the brightness factor, clipped and rounded."""
    return tf.cast(tf.round(tf.clip_by_value(image * brightness, 0.0, 255.0)), tf.uint8)

  def __call__(self, i: tf.Tensor) -> dict[str, tf.Tensor]:
    """Sample i: see `make_dataset` for the fields."""
    d = self.d
    c = self.draw(i)
    u, normal, mode = c["uniform"], c["normal"], c["mode"]
    tz, ts = d.template_size, d.search_size
    # Augmentation: brightness per image; one flip for the pair, image and box together.
    b = d.brightness_jitter
    brightness = tf.cast(1.0 - b + 2.0 * b * u[_U_BRIGHTNESS], tf.float32)
    flip = u[_U_FLIP] < d.flip_prob

    # Template: a jittered crop around the template box; all zero in mode 1 (masked by the
    # model), where the frame is not even decoded.
    z_box = tf.gather(self.boxes, c["template"])

    def template_crop() -> tuple[tf.Tensor, tf.Tensor]:
      top_left, size = self._jittered_region(
          z_box, normal[_N_Z_SCALE], u[_U_Z_CENTER], d.template_factor, d.template_scale_jitter,
          d.template_center_jitter)
      image = self._crop(self._read(c["template"]), top_left, size, size, tz, flip)
      return (self._to_uint8(image, brightness[0]),
              self._box_in_region(z_box, top_left, size, size, flip))

    def no_template() -> tuple[tf.Tensor, tf.Tensor]:
      return tf.zeros([tz, tz, 3], tf.uint8), tf.constant([0.5, 0.5, 1.0, 1.0], tf.float32)

    template, template_box = tf.cond(mode == 1, no_template, template_crop)

    # Search: a jittered crop around the search box, or in mode 1 the whole frame resized
    # (grounding), with the same sampling formula per axis.
    x_box = tf.gather(self.boxes, c["search"])
    frame = self._read(c["search"])
    frame_hw = tf.cast(tf.shape(frame)[:2], tf.float32)
    top_left, size = self._jittered_region(
        x_box, normal[_N_X_SCALE], u[_U_X_CENTER], d.search_factor, d.search_scale_jitter,
        d.search_center_jitter)
    grounding = mode == 1
    top_left = tf.where(grounding, tf.zeros([2]), top_left)
    width = tf.where(grounding, frame_hw[1], size)
    height = tf.where(grounding, frame_hw[0], size)
    search = self._to_uint8(self._crop(frame, top_left, width, height, ts, flip), brightness[1])
    search_box = self._box_in_region(x_box, top_left, width, height, flip)

    with_text = tf.cast(mode != 0, tf.int32)
    return {
        "template": template,
        "search": search,
        "template_box": template_box,
        "search_box": search_box,
        "text_ids": tf.gather(self.text_ids, c["seq"]) * with_text,
        "text_mask": tf.gather(self.text_mask, c["seq"]) * with_text,
        "mode": mode,
        "index": tf.cast(i, tf.int64),
    }


def make_dataset(index: sampler.Index, config: Any, *, seed: int, start_index: int,
                 process_index: int, process_count: int, local_batch: int) -> tf.data.Dataset:
  """This host's infinite stream of training batches.

  Host h of H takes global samples step * G + h + H * j (j < local_batch, G = local_batch * H),
  counting steps from `start_index` (= start_step * G to resume), so step s covers exactly
  samples [s * G, (s + 1) * G) whatever H is.

  Args:
    index: the source's index (`sampler.build_index`).
    config: the full config; reads `config.data.*`.
    seed: stream seed.
    start_index: global index of the first sample of the first step.
    process_index, process_count: this host and the host count.
    local_batch: samples per host per step.

  Returns:
    Dataset of dicts (b = local_batch, Tz/Ts = template/search size, L = text length):
      template uint8 [b, Tz, Tz, 3] (zeros in mode 1), search uint8 [b, Ts, Ts, 3],
      template_box / search_box float32 [b, 4] normalised cxcywh in the crop (template_box is
      (0.5, 0.5, 1, 1) in mode 1), text_ids / text_mask int32 [b, L] (zeros in mode 0),
      mode int32 [b] (0 box, 1 language, 2 both), index int64 [b] global sample indices.
  """
  if not 0 <= process_index < process_count or local_batch < 1:
    raise ValueError(f"bad host split: process {process_index} of {process_count}, "
                     f"local_batch {local_batch}")
  sample = _Sampler(index, config, seed)
  g = local_batch * process_count

  # No Python control flow to convert: skipping autograph halves the tracing time.
  @tf.autograph.experimental.do_not_convert
  def sample_k(k: tf.Tensor) -> dict[str, tf.Tensor]:
    # k counts this host's samples; map it to the global index of the interleaved split.
    i = (start_index + (k // local_batch) * g + process_index
         + process_count * (k % local_batch))
    return sample(i)

  d = config.data
  ds = tf.data.Dataset.counter(0, dtype=tf.int64)
  ds = ds.map(sample_k, num_parallel_calls=d.num_parallel_calls, deterministic=True)
  ds = ds.batch(local_batch, drop_remainder=True)
  ds = ds.prefetch(d.prefetch)
  options = tf.data.Options()
  options.deterministic = True
  # A fixed pool sized for the map, and one thread per op: the host also feeds the accelerator.
  options.threading.private_threadpool_size = max(2, d.num_parallel_calls + 1)
  options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options)


def batches(index: sampler.Index, config: Any, *, seed: int, start_step: int,
            process_index: int = 0, process_count: int = 1,
            global_batch: int) -> Iterator[dict[str, np.ndarray]]:
  """This host's numpy batches from `start_step` on (see `make_dataset` for the fields).

  Raises:
    DataError: a frame TensorFlow cannot read or decode, named with dataset, sequence, file and
      frame number.
    tf.errors.OpError: the original error with the step added, when no bad file is found.
  """
  if global_batch % process_count:
    raise ValueError(f"global_batch {global_batch} is not divisible by {process_count} hosts")
  local_batch = global_batch // process_count
  ds = make_dataset(index, config, seed=seed, start_index=start_step * global_batch,
                    process_index=process_index, process_count=process_count,
                    local_batch=local_batch)
  it = iter(ds)
  step = start_step
  while True:
    try:
      batch = next(it)
    except StopIteration:
      return
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      err = _find_bad_frame(index, config, seed, step, process_index, process_count, local_batch)
      if err is not None:
        raise err from e
      raise type(e)(e.node_def, e.op, f"{e.message} [step={step}]") from e
    yield {k: v.numpy() for k, v in batch.items()}
    step += 1


def _find_bad_frame(index: sampler.Index, config: Any, seed: int, step: int, process_index: int,
                    process_count: int, local_batch: int) -> DataError | None:
  """Re-draws the step's samples and decodes their frames one by one to name the bad file."""
  sample = _Sampler(index, config, seed)
  indices = sampler.host_sample_indices(step, process_index, process_count, local_batch)

  @tf.autograph.experimental.do_not_convert
  def choose(i: tf.Tensor) -> dict[str, tf.Tensor]:
    c = sample.draw(i)
    return {k: c[k] for k in ("template", "search", "mode")}

  # One traced batch: drawing hundreds of samples eagerly would take seconds.
  ds = tf.data.Dataset.from_tensor_slices(indices).map(choose)
  c = {k: v.numpy() for k, v in next(iter(ds.batch(len(indices)))).items()}
  # Mode 1 does not decode its template frame; check such frames last all the same.
  language_only = c["mode"] == 1
  flats = [int(f) for f in np.concatenate(
      [c["search"], c["template"][~language_only], c["template"][language_only]])]
  flats = list(dict.fromkeys(flats))

  def error(flat: int, what: str) -> DataError:
    s, frame = index.locate(flat)
    return data_error(index.dataset, index.seq_names[s], str(index.frame_paths[flat]),
                      f"{what} (training step {step})", frame=frame)

  for flat in flats:
    path = str(index.frame_paths[flat])
    try:
      with Image.open(path) as im:
        im.load()
    except FileNotFoundError:
      return error(flat, "missing frame")
    except (OSError, SyntaxError, ValueError) as e:
      return error(flat, f"corrupt image ({e})")
  # Pillow may accept what TensorFlow rejects (e.g. a format decode_image does not know).
  for flat in flats:
    try:
      decode_frame(tf.io.read_file(str(index.frame_paths[flat])))
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      return error(flat, f"TensorFlow cannot decode image ({e.message})")
  return None
