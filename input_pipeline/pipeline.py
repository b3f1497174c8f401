"""The tf.data training pipeline: sample i of the global stream is a pure function of (seed, i).

Every random choice of sample i (source of the mixture, sequence, init mode, template and search
frames, jitter, augmentation) comes from stateless Philox draws keyed by [seed, i], so a run
resumes exactly at any step and splits over any number of hosts without iterator state
(docs/design.md section 5), whatever the mixture. All of it runs in the TF graph with a fixed
thread pool and a bounded prefetch (no AUTOTUNE): no Python in the hot path. A JPEG is decoded
only over the window a crop samples (`_Sampler._read_crop`): the same pixels as cropping the whole
decoded frame. This is the only module importing TensorFlow. The crop convention (where a crop
samples, the square region around a box) is `lgtrack_jax/ops/crop.py`'s, called here on TF
tensors: the tracker crops with the same functions.
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
from lgtrack_jax.ops import crop as crop_ops

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
_U_SOURCE = 11
_NUM_UNIFORM = 12
_N_Z_SCALE, _N_X_SCALE = slice(0, 2), slice(2, 4)
_NUM_NORMAL = 4
_ALG = "philox"  # explicit, so streams never depend on the device TF would auto-select
_WINDOW_MARGIN = 2  # px decoded around a JPEG crop's samples (see `_Sampler._read_crop`)


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
    if config.data.on_bad_image not in ("error", "skip"):
      raise ValueError(f"config.data.on_bad_image must be 'error' or 'skip', got "
                       f"{config.data.on_bad_image!r}")
    self.d = d
    self.seed = seed
    # Source = number of cumulative-probability thresholds u has passed (as for the mode).
    self.source_thresholds = tf.constant(np.cumsum(index.source_probs)[:-1], tf.float64)
    self.source_seq_start = tf.constant(index.source_seq_start, tf.int64)
    self.source_seq_count = tf.constant(index.source_seq_count, tf.int64)
    self.source_grounding = tf.constant(index.source_grounding, tf.bool)
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
      uniform [_NUM_UNIFORM] float64 in [0, 1), normal [_NUM_NORMAL] float32, source / seq /
      template / search (flat frame indices) scalar int64, mode scalar int32.
    """
    base = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(i, tf.int64)])
    keys = tf.random.experimental.stateless_split(base, num=2, alg=_ALG)
    u = tf.random.stateless_uniform([_NUM_UNIFORM], keys[0], dtype=tf.float64, alg=_ALG)
    normal = tf.random.stateless_normal([_NUM_NORMAL], keys[1], alg=_ALG)

    def uniform_int(slot: int, n: tf.Tensor) -> tf.Tensor:
      # float64 keeps floor(u * n) unbiased for any frame count; the min guards rounding.
      k = tf.cast(tf.floor(u[slot] * tf.cast(n, tf.float64)), tf.int64)
      return tf.minimum(k, n - 1)

    source = tf.reduce_sum(tf.cast(u[_U_SOURCE] >= self.source_thresholds, tf.int64))
    seq = self.source_seq_start[source] + uniform_int(_U_SEQ, self.source_seq_count[source])
    mode = tf.reduce_sum(tf.cast(u[_U_MODE] >= self.mode_thresholds, tf.int32))
    mode = tf.where(self.has_sentence[seq], mode, 0)
    # Single images (grounding sources) are always language-only: there is no second frame.
    mode = tf.where(self.source_grounding[source], 1, mode)

    vis = tf.slice(self.vis_frames, [self.vis_start[seq]], [self.vis_count[seq]])
    template = vis[uniform_int(_U_TEMPLATE, self.vis_count[seq])]
    # Flat indices are contiguous within a sequence, so frame-number gaps equal flat gaps.
    bounds = tf.reshape(tf.stack([template - self.d.max_gap, template + self.d.max_gap]), [1, 2])
    lo = tf.searchsorted(vis[None], bounds[:, :1], side="left", out_type=tf.int64)[0, 0]
    hi = tf.searchsorted(vis[None], bounds[:, 1:], side="right", out_type=tf.int64)[0, 0]
    search = vis[lo + uniform_int(_U_SEARCH, hi - lo)]
    return {"uniform": u, "normal": normal, "source": source, "seq": seq, "template": template,
            "search": search, "mode": mode}

  def _read_crop(self, flat: tf.Tensor, region, out: int,
                 flip: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Reads frame `flat` and crops a region of it (see `_crop`), decoding only what it needs.

    A JPEG is decoded over the window the crop samples (plus the bilinear neighbours), not
    whole: a search region is usually a small part of a 1280x720 frame. Other formats are
    decoded whole. Samples outside the image read 0 either way, so the crop equals a crop of the
    fully decoded frame.

    Args:
      flat: scalar int64 flat frame index.
      region: frame_hw [2] float32 -> (top_left [2], width, height) float32 of the crop region.
      out: output side.
      flip: bool scalar.

    Returns:
      crop [out, out, 3] float32, and the region's top_left [2], width, height.
    """
    data = tf.io.read_file(self.paths[flat])

    def jpeg() -> tuple[tf.Tensor, ...]:
      shape = tf.io.extract_jpeg_shape(data)
      hw = tf.cast(shape[:2], tf.float32)
      top_left, width, height = region(hw)
      x_first, x_last = crop_ops.crop_sample_span(top_left[0], width, out)
      y_first, y_last = crop_ops.crop_sample_span(top_left[1], height, out)
      # Window [lo, hi] per axis: the bilinear taps plus a margin, because libjpeg's chroma
      # upsampling treats a window edge as an image edge (measured: 1 px suffices, 4:2:0 or not);
      # at least 2 px, so crop_and_resize never sees a 1-px image.
      margin = float(_WINDOW_MARGIN)
      lo = tf.clip_by_value(tf.floor(tf.stack([y_first, x_first])) - margin, 0.0, hw - 2.0)
      hi = tf.clip_by_value(tf.math.ceil(tf.stack([y_last, x_last])) + margin, lo + 1.0,
                            hw - 1.0)
      window = tf.cast(tf.concat([lo, hi - lo + 1.0], axis=0), tf.int32)
      image = tf.io.decode_and_crop_jpeg(data, window, channels=3,
                                         dct_method="INTEGER_ACCURATE")
      crop = self._crop(image, top_left - tf.reverse(lo, [0]), width, height, out, flip)
      return crop, top_left, width, height

    def other() -> tuple[tf.Tensor, ...]:
      image = decode_frame(data)
      top_left, width, height = region(tf.cast(tf.shape(image)[:2], tf.float32))
      return self._crop(image, top_left, width, height, out, flip), top_left, width, height

    return tf.cond(tf.io.is_jpeg(data), jpeg, other)

  @staticmethod
  def _jittered_region(box: tf.Tensor, normal: tf.Tensor, uniform: tf.Tensor, factor: float,
                       scale_jitter: float, center_jitter: float) -> tuple[tf.Tensor, tf.Tensor]:
    """OSTrack jitter -> square crop region (`crop_ops.region_around` of the jittered box).

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
    # From the centre, not `crop_region` of an xywh box: x = c - w / 2 then c = x + w / 2 can
    # move the centre by an ulp, and the training crops would no longer be what they were.
    region = crop_ops.region_around(center_j, wh_j, factor, xp=tf)
    return region[:2], region[2]

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
    y1, x1, y2, x2 = crop_ops.crop_and_resize_box(
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
      image, _, _, _ = self._read_crop(c["template"], lambda hw: (top_left, size, size), tz,
                                       flip)
      return (self._to_uint8(image, brightness[0]),
              self._box_in_region(z_box, top_left, size, size, flip))

    def no_template() -> tuple[tf.Tensor, tf.Tensor]:
      return tf.zeros([tz, tz, 3], tf.uint8), tf.constant([0.5, 0.5, 1.0, 1.0], tf.float32)

    template, template_box = tf.cond(mode == 1, no_template, template_crop)

    # Search: a jittered crop around the search box, or in mode 1 the whole frame resized
    # (grounding), with the same sampling formula per axis.
    x_box = tf.gather(self.boxes, c["search"])
    jittered, size = self._jittered_region(
        x_box, normal[_N_X_SCALE], u[_U_X_CENTER], d.search_factor, d.search_scale_jitter,
        d.search_center_jitter)
    grounding = mode == 1

    def search_region(frame_hw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
      return (tf.where(grounding, tf.zeros([2]), jittered),
              tf.where(grounding, frame_hw[1], size), tf.where(grounding, frame_hw[0], size))

    search, top_left, width, height = self._read_crop(c["search"], search_region, ts, flip)
    search = self._to_uint8(search, brightness[1])
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
  if d.on_bad_image == "skip":
    # A sample whose frame cannot be read or decoded is dropped; the batch fills up with the
    # following samples (`batches` counts and names the dropped ones).
    ds = ds.ignore_errors()
  ds = ds.batch(local_batch, drop_remainder=True)
  ds = ds.prefetch(d.prefetch)
  options = tf.data.Options()
  options.deterministic = True
  # A fixed pool sized for the map, and one thread per op: the host also feeds the accelerator.
  options.threading.private_threadpool_size = max(2, d.num_parallel_calls + 1)
  options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options)


def batches(index: sampler.Index, config: Any, *, seed: int, start_step: int,
            process_index: int = 0, process_count: int = 1, global_batch: int,
            stats: dict[str, int] | None = None) -> Iterator[dict[str, np.ndarray]]:
  """This host's numpy batches from `start_step` on (see `make_dataset` for the fields).

  With `config.data.on_bad_image == "skip"` (training only), samples whose frames cannot be read
  or decoded are dropped and logged by name; `stats["skipped"]` counts them. The stream then
  runs ahead of `step * global_batch` by the number of dropped samples, so a resumed run may
  repeat that many samples: "skip" trades exact resume for not stopping on a bad file.

  Raises:
    DataError: with "error" (the default), a frame TensorFlow cannot read or decode, named with
      dataset, sequence, file and frame number.
    tf.errors.OpError: the original error with the step added, when no bad file is found.
  """
  if global_batch % process_count:
    raise ValueError(f"global_batch {global_batch} is not divisible by {process_count} hosts")
  local_batch = global_batch // process_count
  start_index = start_step * global_batch
  ds = make_dataset(index, config, seed=seed, start_index=start_index,
                    process_index=process_index, process_count=process_count,
                    local_batch=local_batch)
  stats = {} if stats is None else stats
  stats.setdefault("skipped", 0)
  g = local_batch * process_count

  def host_k(i: int) -> int:  # position of global sample i in this host's stream
    rel = i - start_index - process_index
    return (rel // g) * local_batch + (rel % g) // process_count

  def global_i(k: int) -> int:  # inverse of host_k, as in `make_dataset`
    return start_index + (k // local_batch) * g + process_index + process_count * (k % local_batch)

  next_k = 0
  it = iter(ds)
  step = start_step
  while True:
    try:
      batch = next(it)
    except StopIteration:
      return
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      indices = sampler.host_sample_indices(step, process_index, process_count, local_batch)
      errors = _find_bad_frames(index, config, seed, indices, f"training step {step}")
      if errors:
        raise errors[0] from e
      raise type(e)(e.node_def, e.op, f"{e.message} [step={step}]") from e
    out = {k: v.numpy() for k, v in batch.items()}
    dropped = []
    for i in out["index"].tolist():
      k = host_k(i)
      dropped.extend(global_i(j) for j in range(next_k, k))
      next_k = k + 1
    if dropped:
      stats["skipped"] += len(dropped)
      for err in _find_bad_frames(index, config, seed, np.array(dropped, np.int64),
                                  f"sample skipped at training step {step}"):
        logging.warning("%s", err)
      logging.warning("skipped %d samples with unreadable frames so far", stats["skipped"])
    yield out
    step += 1


def sample_choices(index: sampler.Index, config: Any, seed: int,
                   indices: np.ndarray) -> dict[str, np.ndarray]:
  """The discrete choices of the given global samples, without reading any file.

  The same graph function the pipeline runs, batched: the pure part of "sample i = f(seed, i)".

  Args:
    index: the (mixture) index.
    config: the full config; reads `config.data.*`.
    seed: stream seed.
    indices: [n] int64 global sample indices.

  Returns:
    source / seq / template / search [n] int64 (template and search are flat frame indices),
    mode [n] int32.
  """
  sample = _Sampler(index, config, seed)

  @tf.autograph.experimental.do_not_convert
  def choose(i: tf.Tensor) -> dict[str, tf.Tensor]:
    c = sample.draw(i)
    return {k: c[k] for k in ("source", "seq", "template", "search", "mode")}

  indices = np.asarray(indices, np.int64)
  if indices.size == 0:
    return {k: np.zeros(0, np.int32 if k == "mode" else np.int64)
            for k in ("source", "seq", "template", "search", "mode")}
  # One traced batch: drawing thousands of samples eagerly would take seconds.
  ds = tf.data.Dataset.from_tensor_slices(indices).map(choose).batch(len(indices))
  return {k: v.numpy() for k, v in next(iter(ds)).items()}


def _find_bad_frames(index: sampler.Index, config: Any, seed: int, indices: np.ndarray,
                     where: str) -> list[DataError]:
  """Re-draws the given samples and decodes their frames one by one to name the bad files."""
  if len(indices) == 0:
    return []
  c = sample_choices(index, config, seed, indices)
  # Mode 1 does not decode its template frame; check such frames last all the same.
  language_only = c["mode"] == 1
  flats = [int(f) for f in np.concatenate(
      [c["search"], c["template"][~language_only], c["template"][language_only]])]
  flats = list(dict.fromkeys(flats))

  def error(flat: int, what: str) -> DataError:
    s, frame = index.locate(flat)
    return data_error(index.dataset_of(s), index.seq_names[s], str(index.frame_paths[flat]),
                      f"{what} ({where})", frame=frame)

  errors = []
  for flat in flats:
    path = str(index.frame_paths[flat])
    try:
      with Image.open(path) as im:
        im.load()
    except FileNotFoundError:
      errors.append(error(flat, "missing frame"))
    except (OSError, SyntaxError, ValueError) as e:
      errors.append(error(flat, f"corrupt image ({e})"))
  if errors:
    return errors
  # Pillow may accept what TensorFlow rejects (e.g. a format decode_image does not know).
  for flat in flats:
    try:
      decode_frame(tf.io.read_file(str(index.frame_paths[flat])))
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      errors.append(error(flat, f"TensorFlow cannot decode image ({e.message})"))
  return errors
