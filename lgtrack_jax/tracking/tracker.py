"""The online tracker (DESIGN section 7).

Per frame, one jitted function takes the frames on device, crops the search regions around
the last boxes and resizes them (in the jit), runs LGTrack, applies the Hanning-window penalty,
maps the boxes back to the frames and clips them to the images. Each of these follows OSTrack's
test-time code (lib/test/tracker/ostrack.py), the field's reference: the crop of `sample_target`
(`crop.ostrack_crop`), the window times the score map (`window.windowed_scores`), the peak cell's
box, `map_box_back` (through the square centred on the last box, `crop.centred_region`) and
`clip_box` with its margin (`boxes.clip_box_margin`). First boxes are 0-based top-left x, y, w, h
in pixels, as the benchmarks' files give them. `eval.crop`, `eval.window` and `eval.clip_margin`
name the alternatives. What the template and the sentence
contribute (`LGTrack.condition`: the template crop's tokens, the projected text tokens, the
sentence vector, the EMIM modulation vectors, and the first EMIM's attention keys and values from the
text) is computed once per sequence, on its first frame,
and kept in the state; each frame runs only `LGTrack.localize`. With `model.template_cache` the
template tokens never see the search crop, so the whole template side runs once too: the state
then holds every ViT block's template keys and values, every EMIM's text keys and the text the
decoder reads, and a frame runs only the search tokens through the ViT. Modes: 'nl_bbox' (box +
sentence: model mode 2), 'bbox' (box only: mode 0), 'nl' (sentence only: the first frame is
grounded by the model in mode 1, then tracking continues in mode 2 from the grounded box).

Batched tracking: `track_many(jobs, batch_sequences=K)` keeps K sequences in flight, one per
slot; the per-frame function runs on all K slots at once (the model is batched over slots, the crop
is vmapped), and a finished sequence's slot is refilled from the queue at once, so the batch stays
full until the queue runs dry (then idle slots carry a zero frame whose output is ignored). Each
slot's computation only reads its own row, so the boxes equal those of tracking one sequence at a
time (to float tolerance).

Frames of any size share compilations: a frame is copied into the top-left corner of a zero buffer
whose sides are rounded up to a multiple of `config.eval.frame_bucket`, and its true size travels
as an array (`crop.resample` never reads the padding). Likewise the text tokens enter the per-frame
function cut to the longest sentence in flight, rounded up to `config.eval.text_bucket`: a sentence
is far shorter than `text.max_len`, and every text token costs work in each EMIM every frame.

With `config.eval.search_window`, each frame after the first goes to the device as the window its
search crop reads (`window_frames`: the host knows the last box) rather than whole: the same
boxes, a fraction of the bytes, at the price of a compilation per window size.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any, Callable, Iterable, Iterator, Sized

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lgtrack_jax import flops
from lgtrack_jax.models import layers, lgtrack
from lgtrack_jax.models.cross_attention import cut_keys
from lgtrack_jax.models.head import argmax_cells
from lgtrack_jax.modes import Mode
from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.ops import crop
from lgtrack_jax.ops.window import hann2d, windowed_scores
from lgtrack_jax.tracking import kernels


@dataclasses.dataclass
class Job:
  """One sequence to track: `frames` yields [H, W, 3] uint8 arrays; `init_box` [4] xywh pixels
  (model space) or None in mode 'nl'; `sentence` str or None; `key` is returned with the result."""

  key: Any
  frames: Iterable[np.ndarray]
  init_box: np.ndarray | None
  sentence: str | None


@dataclasses.dataclass
class _Slot:
  job: Job
  frames: Iterator[np.ndarray]
  boxes: list[np.ndarray]
  times: list[float]
  text_len: int = 0  # real (unmasked) tokens of the sentence


def check_request(mode: str, init_box, sentence: str | None, language: bool = True,
                  name: Any = None) -> None:
  """Raises ValueError when `mode` cannot run with this initial box / sentence (`language`:
  whether the model has a language branch, `model.language`); `name` names the sequence."""
  Mode.parse(mode)
  if mode != "bbox" and not language:
    raise ValueError(f"mode={mode!r} needs a sentence, and this config has no language branch "
                     "(model.language=False): use mode 'bbox'")
  which = "" if name is None else f" (sequence {name})"
  if mode in ("nl", "nl_bbox") and sentence is None:
    raise ValueError(f"mode={mode!r} needs a sentence and none was given{which}")
  if mode != "nl" and init_box is None:
    raise ValueError(f"mode={mode!r} needs an initial box and none was given{which}")


def bucket(n: int, multiple: int) -> int:
  """n rounded up to a multiple of `multiple` (frame buffer side)."""
  return -(-n // multiple) * multiple


def pad_frames(frames: list[np.ndarray | None], multiple: int) -> tuple[np.ndarray, np.ndarray]:
  """Frames [H, W, 3] uint8 (None: an idle slot) -> (zero buffer [K, Hb, Wb, 3] uint8 holding
  each frame in its top-left corner, sides the largest frame's rounded up to `multiple`;
  valid sizes hw [K, 2] int32, (1, 1) for idle slots)."""
  present = [f for f in frames if f is not None]
  hb = bucket(max(f.shape[0] for f in present), multiple)
  wb = bucket(max(f.shape[1] for f in present), multiple)
  batch = np.zeros((len(frames), hb, wb, 3), np.uint8)
  hw = np.ones((len(frames), 2), np.int32)
  for k, f in enumerate(frames):
    if f is not None:
      batch[k, :f.shape[0], :f.shape[1]] = f
      hw[k] = f.shape[:2]
  return batch, hw


def window_side(n: int, multiple: int) -> int:
  """n rounded up to `multiple` times 1, 2, 3, 4, 6, 8, 12, 16, ... (a window buffer's side: at
  most 1.5x what is needed, and few distinct sides, so few compilations)."""
  m = 1
  while m * multiple < n:  # 1, 2, 3, 4, 6, 8, 12, ...: the powers of two and 1.5 times them
    m = m + 1 if m < 2 else m * 3 // 2 if m & (m - 1) == 0 else m * 4 // 3
  return m * multiple


def window_frames(frames: list[np.ndarray | None], regions: list[np.ndarray | None],
                  multiple: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The part of each frame its search crop reads, for the device: frames [H, W, 3] uint8 (None:
  an idle slot), regions (x0, y0, side) float on the host ->
  (windows [K, Hw, Ww, 3] uint8, frame sizes hw [K, 2] int32, origins [K, 2] int32 (row, column)
  of each window in its frame; `crop.resample`'s arguments).

  Each window holds every pixel its crop reads (`crop.window_bounds`), so the crop is the full
  frame's, exactly. Sides are `window_side`s of what the widest slot needs, at most the frame's
  padded side: a 1280x720 frame is 2.8 MB, a 384x384 window 0.4 MB.
  """
  bounds = {k: crop.window_bounds(r, f.shape[:2])
            for k, (f, r) in enumerate(zip(frames, regions)) if f is not None}
  hb = max(min(window_side(r1 - r0, multiple), bucket(frames[k].shape[0], multiple))
           for k, (r0, r1, _, _) in bounds.items())
  wb = max(min(window_side(c1 - c0, multiple), bucket(frames[k].shape[1], multiple))
           for k, (_, _, c0, c1) in bounds.items())
  batch = np.zeros((len(frames), hb, wb, 3), np.uint8)
  hw = np.ones((len(frames), 2), np.int32)
  origin = np.zeros((len(frames), 2), np.int32)
  for k, (r0, _, c0, _) in bounds.items():
    f = frames[k]
    # As far up/left as the bounds start, but no further down/right than the frame allows.
    oy, ox = max(min(r0, f.shape[0] - hb), 0), max(min(c0, f.shape[1] - wb), 0)
    window = f[oy:oy + hb, ox:ox + wb]
    batch[k, :window.shape[0], :window.shape[1]] = window
    hw[k], origin[k] = f.shape[:2], (oy, ox)
  return batch, hw, origin


class LGTracker:
  """Tracks sequences with a trained LGTrack, one at a time (`track`) or K at once (`track_many`).

  `tokenize(list[str]) -> (ids [N, L], mask [N, L])` int32 arrays (lgtrack_jax.tokenizer); None
  for a model without a language branch (`model.language=False`).
  """

  def __init__(self, model: lgtrack.LGTrack, params, config: ml_collections.ConfigDict,
               tokenize: Callable | None):
    # The cross-attentions run the tracker's kernels (`eval.cross_attention`, tracking/kernels.py).
    model = model.clone(cross_attention_kernel=kernels.cross_attention_kernel(
        config.eval.cross_attention))
    self.model = model
    # Inference only: the matmul weights in the compute dtype once, not cast again every frame,
    # and the folded kernels' query/key/value weights heads-major once (their layout).
    self.params = layers.cast_kernels(params, config.model.dtype)
    self.variables = {"params": self.params, kernels.BY_HEAD: kernels.kernels_by_head(
        model.apply, {"params": self.params}, **lgtrack.dummy_inputs(config))}
    self.config = config
    self.tokenize = tokenize
    d = config.data
    self._zs, self._xs = d.template_size, d.search_size
    self._bucket = config.eval.frame_bucket
    self._text_max = config.model.text.max_len
    grid = d.search_size // config.model.patch_size
    self._window = jnp.asarray(hann2d(grid, grid))
    e = config.eval
    if e.crop not in ("ostrack", "continuous"):
      raise ValueError(f"eval.crop={e.crop!r}: expected 'ostrack' or 'continuous'")
    if e.window not in ("multiply", "blend"):
      raise ValueError(f"eval.window={e.window!r}: expected 'multiply' or 'blend'")
    self.traces = collections.Counter()  # compilations of the jitted pieces, by name
    self._encode = jax.jit(functools.partial(model.apply, method=model.encode_text))
    self._init = jax.jit(self._init_fn, static_argnames="ground")
    self._step = jax.jit(self._step_fn, donate_argnums=4, static_argnames="text_len")
    self._set_slot = jax.jit(_set_slot, donate_argnums=0)

  # --- jitted pieces (pure functions of arrays) ----------------------------------------------
  def _apply(self, variables, template, search, template_box, text, mode, select_cells):
    """Batched LGTrack on precomputed text: template/search [K, S, S, 3], mode [K] int32; boxes
    read at `select_cells(score_logits)` (the head's size/offset branches run only there)."""
    return self.model.apply(
        variables, template, search, template_box,
        jnp.zeros_like(text["mask"]), text["mask"], mode,
        text={"tokens": text["tokens"], "sentence": text["sentence"]}, select_cells=select_cells)

  def _condition(self, variables, template, template_box, text, mode):
    """LGTrack's per-sequence half (`LGTrack.condition`) for one sequence: template [Zs, Zs, 3],
    template_box [4], text of batch 1, mode [] int32 -> its entries without the batch axis."""
    cond = self.model.apply(variables, template[None], template_box[None], text["mask"],
                            mode[None], text, text_keys=True,
                            cache=self.config.model.template_cache, method=self.model.condition)
    return jax.tree.map(lambda a: a[0], cond)

  def _init_fn(self, variables, frame, hw, box, text, mode, *, ground: bool):
    """First frame of one sequence: padded frame [Hb, Wb, 3] uint8, valid size hw [2] int32,
    box [4] xywh px (ignored when `ground`), text of batch 1, mode [] int32 (model mode of the
    frames that follow).

    Returns box [4] (the given one, or the grounded one: whole frame, model mode 1) and the
    sequence's conditioning (`_condition`: template tokens from the crop around that box, text
    tokens, sentence and modulation vectors), which every later frame reuses.
    """
    self.traces["init"] += 1
    if ground:
      search = crop.resize_full(frame, self._xs, hw)
      template = jnp.zeros((1, self._zs, self._zs, 3), float)
      out = self._apply(variables, template, search[None], jnp.array([[0.5, 0.5, 1.0, 1.0]]),
                        text, jnp.ones((1,), jnp.int32), argmax_cells)
      cx, cy, bw, bh = out["boxes"][0]
      h, w = hw[0].astype(float), hw[1].astype(float)
      box = box_ops.clip_xywh_to_image(
          jnp.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]), w, h)
    region = self.region(box, self.config.data.template_factor)
    template = self.crop(frame, region, self._zs, hw)
    template_box = crop.box_to_crop(box, crop.centred_region(box, region[..., 2]))
    return box, self._condition(variables, template, template_box, text, mode)

  def region(self, box: jnp.ndarray, factor: float, xp=jnp) -> jnp.ndarray:
    """The crop region (x0, y0, side) [..., 3] around boxes [..., 4] xywh px (`eval.crop`)."""
    if self.config.eval.crop == "ostrack":
      return crop.ostrack_region(box, factor, xp)
    return crop.crop_region(box, factor, xp)

  def crop(self, frame, region, out: int, hw, origin=None) -> jnp.ndarray:
    """One frame's crop [out, out, 3] float at `region` (`eval.crop`); arguments as
    `crop.crop_and_resize`'s."""
    if self.config.eval.crop == "ostrack":
      return crop.ostrack_crop(frame, region, out, hw, origin, self.config.eval.quantize_crop)
    return crop.crop_and_resize(frame, region, out, hw, origin)

  def _step_fn(self, variables, windows, hw, origin, state, *, text_len: int):
    """One frame of K sequences: windows [K, Hw, Ww, 3] uint8 of the frames (`window_frames`),
    hw [K, 2] int32 frame sizes, origin [K, 2] int32 the windows' places in their frames, state
    (see `_empty_state`) with the previous boxes [K, 4] xywh px and each sequence's conditioning;
    the model sees the first `text_len` text tokens (no fewer than any active slot's sentence has).

    Returns (new state, boxes [K, 4] xywh px, peak scores [K]).
    """
    self.traces["step"] += 1  # runs once per compilation (tests count them)
    e = self.config.eval
    regions = self.region(state["box"], self.config.data.search_factor)
    search = jax.vmap(self.crop, in_axes=(0, 0, None, 0, 0))(windows, regions, self._xs, hw, origin)
    influence = e.window_influence if e.window == "blend" else None

    def peaks(score_logits):  # the Hanning-window penalty: favour small motion
      return argmax_cells(windowed_scores(score_logits, self._window, influence))

    cond = {**state["cond"], "t": state["cond"]["t"][:, :text_len],
            "t_mask": state["cond"]["t_mask"][:, :text_len]}
    if "keys" in cond:
      cond["keys"] = cut_keys(cond["keys"], text_len)
    if "emim_keys" in cond:  # a cached template's: every EMIM's
      cond["emim_keys"] = [cut_keys(keys, text_len) for keys in cond["emim_keys"]]
    out = self.model.apply(variables, cond, search, peaks, method=self.model.localize)
    score = jax.nn.sigmoid(out["score_logits"])
    box_crop = out["boxes"]
    hwf = hw.astype(float)
    back = crop.centred_region(state["box"], regions[:, 2])
    box = box_ops.clip_box_margin(crop.box_from_crop(box_crop, back), hwf[:, 1], hwf[:, 0],
                                  e.clip_margin)
    box = jnp.where(jnp.all(jnp.isfinite(box), -1, keepdims=True), box, state["box"])
    return {**state, "box": box}, box, score.max(axis=(1, 2))

  def kept_text_tokens(self, lengths: Iterable[int]) -> int:
    """The text tokens the per-frame function keeps for sentences of these token counts."""
    multiple = self.config.eval.text_bucket
    if not multiple:
      return self._text_max
    return min(self._text_max, bucket(max(max(lengths, default=1), 1), multiple))

  def step_shapes(self, batch_sequences: int, frame_hw: tuple[int, int],
                  sentence_tokens: int | None = None) -> tuple[tuple, dict]:
    """(args, kwargs) of the per-frame function, as shapes, for K slots of windows [H, W] (rounded
    up to the bucket; the window of a whole frame at most) and sentences of `sentence_tokens`
    tokens (default text.max_len). The FLOPs do not depend on the window's size."""
    k = batch_sequences
    hb, wb = (bucket(n, self._bucket) for n in frame_hw)
    text = jax.eval_shape(lambda: self.encode_sentence(None))
    template = jax.ShapeDtypeStruct((self._zs, self._zs, 3), jnp.zeros((), float).dtype)
    cond = jax.eval_shape(self._condition, self.variables, template,
                          jax.ShapeDtypeStruct((4,), template.dtype), text,
                          jax.ShapeDtypeStruct((), jnp.int32))
    state = jax.eval_shape(functools.partial(_empty_state, k), cond)
    args = (self.variables, jax.ShapeDtypeStruct((k, hb, wb, 3), jnp.uint8),
            jax.ShapeDtypeStruct((k, 2), jnp.int32), jax.ShapeDtypeStruct((k, 2), jnp.int32),
            state)
    return args, {"text_len": self.kept_text_tokens([sentence_tokens or self._text_max])}

  def lower_step(self, batch_sequences: int, frame_hw: tuple[int, int],
                 sentence_tokens: int | None = None, device: jax.Device | None = None
                 ) -> jax.stages.Lowered:
    """The per-frame function lowered from shapes (`step_shapes`): `.compile()` times
    compilation, `.cost_analysis()` gives its FLOPs. `device`: lower for that device instead of
    the default one (the host CPU analyses lowered modules on any platform)."""
    args, kwargs = self.step_shapes(batch_sequences, frame_hw, sentence_tokens)
    if device is not None:
      args = flops.shapes_on(args, device)
    return self._step.lower(*args, **kwargs)

  # --- host-side driver ----------------------------------------------------------------------
  def encode_sentence(self, sentence: str | None) -> dict:
    """Token features once per sequence (batch 1); None gives an all-masked text."""
    l = self.config.model.text.max_len
    if sentence is None:
      ids, mask = np.zeros((1, l), np.int32), np.zeros((1, l), np.int32)
    else:
      ids, mask = self.tokenize([sentence])
    text = self._encode({"params": self.params}, jnp.asarray(ids), jnp.asarray(mask))
    return {**text, "mask": jnp.asarray(mask)}

  def start(self, state: dict | None, k: int, num_slots: int, frame: np.ndarray,
            init_box: np.ndarray | None, sentence: str | None, mode: str, key: Any = None
            ) -> tuple[dict, np.ndarray, int]:
    """Starts a sequence in slot k of `num_slots` from its first frame [H, W, 3] uint8 and its
    initial box [4] xywh px (ignored in mode 'nl') and sentence (ignored in mode 'bbox'); `state`
    None makes a fresh one. Returns (state, first box [4] float64: the given one exactly, or the
    grounded one; real tokens of the sentence). `key` names the sequence in errors."""
    padded, hw = pad_frames([frame], self._bucket)
    text = self.encode_sentence(sentence if mode != "bbox" else None)
    mask = np.asarray(text["mask"][0])
    text_len = int(mask.sum())
    if not mask[:text_len].all():  # the per-frame function keeps a prefix of the tokens
      raise ValueError(f"sequence {key!r}: the tokenizer's mask is not a prefix: {mask}")
    box0 = jnp.zeros(4, float) if mode == "nl" else jnp.asarray(init_box, float)
    box, cond = self._init(self.variables, padded[0], hw[0], box0, text, jnp.int32(Mode(mode).model_mode),
                           ground=mode == "nl")
    if state is None:
      state = _empty_state(num_slots, cond)
    state = self._set_slot(state, jnp.int32(k), {"box": box, "cond": cond})
    # A given first box comes back as given (float64), not rounded through the device's float32.
    first = np.asarray(box if mode == "nl" else init_box, np.float64)
    return state, first, text_len

  def _start(self, slot: _Slot, k: int, num_slots: int, state: dict | None, mode: str) -> dict:
    """Initialises slot k from its job's first frame; returns the updated state."""
    t0 = time.perf_counter()
    frame = next(slot.frames, None)
    if frame is None:
      raise ValueError(f"sequence {slot.job.key!r} has no frames")
    state, box, slot.text_len = self.start(state, k, num_slots, frame, slot.job.init_box,
                                           slot.job.sentence, mode, slot.job.key)
    slot.boxes.append(box)
    slot.times.append(time.perf_counter() - t0)
    return state

  def track_many(self, jobs: Iterable[Job], mode: str, batch_sequences: int = 1
                 ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """Tracks every job, `batch_sequences` at a time. Yields (key, boxes [N, 4] float64 xywh px,
    seconds per frame [N]) as each sequence finishes (not necessarily in job order)."""
    Mode.parse(mode)
    k_max = batch_sequences
    queue = iter(jobs)
    slots: list[_Slot | None] = [None] * k_max
    state = None
    while True:
      frames: list[np.ndarray | None] = [None] * k_max
      for k in range(k_max):
        while frames[k] is None:
          if slots[k] is None:
            job = next(queue, None)
            if job is None:
              break
            check_request(mode, job.init_box, job.sentence, self.config.model.language,
                          _name(job.key))
            slots[k] = _Slot(job, iter(job.frames), [], [])
            state = self._start(slots[k], k, k_max, state, mode)
          frames[k] = next(slots[k].frames, None)
          if frames[k] is None:  # finished: hand the result over, refill the slot
            done = slots[k]
            slots[k] = None
            yield done.job.key, np.stack(done.boxes), np.asarray(done.times)
      active = [k for k in range(k_max) if frames[k] is not None]
      if not active:
        return
      t0 = time.perf_counter()
      state, boxes, _ = self.advance(
          state, frames, [None if s is None else s.boxes[-1] for s in slots],
          [slots[k].text_len for k in active])
      dt = (time.perf_counter() - t0) / len(active)
      for k in active:
        slots[k].boxes.append(boxes[k])
        slots[k].times.append(dt)

  def advance(self, state: dict, frames: list[np.ndarray | None],
              last_boxes: list[np.ndarray | None], text_lens: Iterable[int]
              ) -> tuple[dict, np.ndarray, np.ndarray]:
    """One frame of every slot, on the host's side of `_step_fn`: frames [H, W, 3] uint8 (None:
    an idle slot), each slot's last box [4] xywh px on the host (None: idle), the token counts of
    the sentences in flight. Returns (new state, boxes [K, 4] float64 xywh px, peak scores [K]
    float64)."""
    if self.config.eval.search_window:
      factor = self.config.data.search_factor
      regions = [None if f is None else self.region(b, factor, np)
                 for f, b in zip(frames, last_boxes)]
      windows, hw, origin = window_frames(frames, regions, self._bucket)
    else:
      windows, hw = pad_frames(frames, self._bucket)
      origin = np.zeros_like(hw)
    state, boxes, scores = self._step(self.variables, windows, hw, origin, state,
                                      text_len=self.kept_text_tokens(text_lens))
    return state, np.asarray(boxes, np.float64), np.asarray(scores, np.float64)

  def track(self, frames: Iterable[np.ndarray], init_box: np.ndarray | None,
            sentence: str | None, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Tracks one sequence. frames: [H, W, 3] uint8 arrays; init_box [4] xywh px (model space).

    Returns (boxes [N, 4] float64 xywh px, seconds per frame [N]).
    """
    ((_, boxes, times),) = list(self.track_many([Job(None, frames, init_box, sentence)], mode))
    return boxes, times


def _name(key: Any) -> Any:
  """What names a job's sequence in errors: a `Sequence` key's name, else the key itself."""
  return getattr(key, "name", key)


def _empty_state(k: int, cond: dict) -> dict:
  """Per-slot tracking state for K slots: the last box [K, 4] xywh px and each sequence's
  conditioning (`LGTracker._condition`), zero-filled and shaped after one slot's `cond` (an idle
  slot has no text and an empty template mask; its output is ignored)."""
  return {
      "box": jnp.tile(jnp.array([0.0, 0.0, 1.0, 1.0], float), (k, 1)),
      "cond": jax.tree.map(lambda a: jnp.zeros((k, *a.shape), a.dtype), cond),
  }


def _set_slot(state: dict, k: jnp.ndarray, new: dict) -> dict:
  """state with row k of every entry replaced by `new` (one slot's unbatched values)."""
  return jax.tree.map(lambda s, n: s.at[k].set(n.astype(s.dtype)), state, new)


class StaticTracker:
  """Sanity baseline: repeats the first-frame box (what an untrained tracker should beat)."""

  def track(self, frames: Sized, init_box: np.ndarray | None,
            sentence: str | None, mode: str) -> tuple[np.ndarray, np.ndarray]:
    del sentence
    if init_box is None:
      raise ValueError(f"the static baseline needs a box (mode={mode!r})")
    n = len(frames)  # no decoding: the baseline never looks at the pixels
    return np.repeat(np.asarray(init_box, np.float64)[None], n, axis=0), np.zeros(n)

  def track_many(self, jobs: Iterable[Job], mode: str, batch_sequences: int = 1
                 ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    del batch_sequences
    for job in jobs:
      if job.init_box is None:
        raise ValueError(f"the static baseline needs a box (mode={mode!r}, sequence "
                         f"{_name(job.key)})")
      yield job.key, *self.track(job.frames, job.init_box, job.sentence, mode)
