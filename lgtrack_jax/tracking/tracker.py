"""The online tracker (DESIGN section 7).

Per frame, one jitted function takes the full frame on device, crops the search region around the
last box and resizes it (in the jit), runs LGTrack, applies the Hanning-window penalty, maps the
box back to the frame and clips it to the image. The sentence is encoded once per sequence.
Modes: 'nl_bbox' (box + sentence: model mode 2), 'bbox' (box only: mode 0), 'nl' (sentence only:
the first frame is grounded by the model in mode 1, then tracking continues in mode 2 from the
grounded box).
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Iterable, Sized

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lgtrack_jax.models import lgtrack
from lgtrack_jax.models.head import decode_boxes
from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.ops import crop
from lgtrack_jax.ops.window import hann2d

MODES = {"bbox": 0, "nl": 2, "nl_bbox": 2}


class LGTracker:
  """Tracks one sequence at a time with a trained LGTrack.

  `tokenize(list[str]) -> (ids [N, L], mask [N, L])` int32 arrays (lgtrack_jax.tokenizer).
  """

  def __init__(self, model: lgtrack.LGTrack, params, config: ml_collections.ConfigDict,
               tokenize: Callable):
    self.model = model
    self.params = params
    self.config = config
    self.tokenize = tokenize
    d = config.data
    self._zs, self._xs = d.template_size, d.search_size
    grid = d.search_size // config.model.patch_size
    self._window = jnp.asarray(hann2d(grid, grid))
    self._encode = jax.jit(functools.partial(model.apply, method=model.encode_text))
    self._template = jax.jit(self._template_fn)
    self._ground = jax.jit(self._ground_fn)
    self._step = jax.jit(self._step_fn)

  # --- jitted pieces (pure functions of arrays) ----------------------------------------------
  def _template_fn(self, frame: jnp.ndarray, box: jnp.ndarray):
    """frame [H, W, 3] uint8, box [4] xywh px -> template [Zs, Zs, 3], template_box [4] cxcywh."""
    region = crop.crop_region(box, self.config.data.template_factor)
    return crop.crop_and_resize(frame, region, self._zs), crop.box_to_crop(box, region)

  def _apply(self, params, template, search, template_box, text, mode):
    return self.model.apply(
        {"params": params}, template[None], search[None], template_box[None],
        jnp.zeros_like(text["mask"]), text["mask"], jnp.full((1,), mode, jnp.int32),
        text={"tokens": text["tokens"], "sentence": text["sentence"]})

  def _ground_fn(self, params, frame: jnp.ndarray, text: dict) -> jnp.ndarray:
    """Language-only first frame: whole frame resized, model mode 1 -> box [4] xywh px."""
    h, w = frame.shape[0], frame.shape[1]
    search = crop.resize_full(frame, self._xs)
    template = jnp.zeros((self._zs, self._zs, 3), jnp.float32)
    out = self._apply(params, template, search, jnp.array([0.5, 0.5, 1.0, 1.0]), text, 1)
    cx, cy, bw, bh = out["boxes"][0]
    box = jnp.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h])
    return box_ops.clip_xywh_to_image(box, w, h)

  def _step_fn(self, params, frame, prev_box, template, template_box, text, mode):
    """One frame: [H, W, 3] uint8 frame, previous box [4] xywh px -> (box [4], score [])."""
    h, w = frame.shape[0], frame.shape[1]
    region = crop.crop_region(prev_box, self.config.data.search_factor)
    search = crop.crop_and_resize(frame, region, self._xs)
    out = self._apply(params, template, search, template_box, text, mode)
    score = jax.nn.sigmoid(out["score_logits"])
    wi = self.config.eval.window_influence
    windowed = (1 - wi) * score + wi * self._window[None]
    box_crop = decode_boxes(windowed, out["size"], out["offset"])[0]
    box = box_ops.clip_xywh_to_image(crop.box_from_crop(box_crop, region), w, h)
    box = jnp.where(jnp.all(jnp.isfinite(box)), box, prev_box)
    return box, score.max()

  # --- host-side driver ----------------------------------------------------------------------
  def encode_sentence(self, sentence: str | None) -> dict:
    """Token features once per sequence; an absent sentence gives an all-masked text."""
    l = self.config.model.text.max_len
    if sentence is None:
      ids, mask = np.zeros((1, l), np.int32), np.zeros((1, l), np.int32)
    else:
      ids, mask = self.tokenize([sentence])
    text = self._encode({"params": self.params}, jnp.asarray(ids), jnp.asarray(mask))
    return {**text, "mask": jnp.asarray(mask)}

  def track(self, frames: Iterable[np.ndarray], init_box: np.ndarray | None,
            sentence: str | None, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Tracks a sequence. frames: [H, W, 3] uint8 arrays; init_box [4] xywh px (model space).

    Returns (boxes [N, 4] float64 xywh px, seconds per frame [N]).
    """
    if mode not in MODES:
      raise ValueError(f"mode={mode!r}: expected one of {sorted(MODES)}")
    if mode in ("nl", "nl_bbox") and not sentence:
      raise ValueError(f"mode={mode!r} needs a sentence")
    if mode != "nl" and init_box is None:
      raise ValueError(f"mode={mode!r} needs an initial box")
    text = self.encode_sentence(sentence if mode != "bbox" else None)
    model_mode = MODES[mode]
    boxes, times = [], []
    template = template_box = box = None
    for i, frame in enumerate(frames):
      t0 = time.perf_counter()
      frame = jax.device_put(frame)
      if i == 0:
        box = (self._ground(self.params, frame, text) if mode == "nl"
               else jnp.asarray(init_box, jnp.float32))
        template, template_box = self._template(frame, box)
      else:
        box, _ = self._step(self.params, frame, box, template, template_box, text, model_mode)
      boxes.append(np.asarray(box, np.float64))
      times.append(time.perf_counter() - t0)
    return np.stack(boxes), np.asarray(times)


class StaticTracker:
  """Sanity baseline: repeats the first-frame box (what an untrained tracker should beat)."""

  def track(self, frames: Sized, init_box: np.ndarray | None,
            sentence: str | None, mode: str) -> tuple[np.ndarray, np.ndarray]:
    del sentence
    if init_box is None:
      raise ValueError(f"the static baseline needs a box (mode={mode!r})")
    n = len(frames)  # no decoding: the baseline never looks at the pixels
    return np.repeat(np.asarray(init_box, np.float64)[None], n, axis=0), np.zeros(n)
