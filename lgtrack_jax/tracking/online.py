"""The per-frame tracker: what a robot loop, an annotation tool or a benchmark toolkit calls.

  tracker = lgtrack_jax.load_tracker("configs/lgtrack_b256.py", checkpoint="runs/x")
  box = tracker.initialize(frame, box=(x, y, w, h), sentence="the red car on the left")
  for frame in frames:
    box = tracker.track(frame)      # float32 [4] x, y, w, h, 0-based pixels
    tracker.confidence              # that frame's peak score

It drives the same jitted functions as `LGTracker.track_many` (the `eval.py` path) with one slot,
so it gives the same boxes; a frame size compiles once per `eval.frame_bucket` bucket. Boxes are
0-based top-left x, y, w, h in pixels, as OSTrack's trackers take and return them.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

import ml_collections
import numpy as np

from lgtrack_jax import checkpoint as checkpoint_lib
from lgtrack_jax import config_io
from lgtrack_jax.modes import Mode
from lgtrack_jax.tracking.tracker import LGTracker


def as_rgb(frame: Any) -> np.ndarray:
  """A frame as [H, W, 3] uint8 RGB: grayscale [H, W] or [H, W, 1] is repeated, RGBA [H, W, 4]
  loses its alpha. Anything else is a ValueError naming what it got."""
  if not isinstance(frame, np.ndarray):
    raise ValueError(f"a frame must be a numpy array, got {type(frame).__name__}")
  if frame.dtype != np.uint8:
    raise ValueError(f"a frame must be uint8 (H, W, 3) RGB, got dtype {frame.dtype}")
  if frame.ndim == 2:
    frame = frame[..., None]
  if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
    raise ValueError(f"a frame must be (H, W, 3) RGB, (H, W) grayscale or (H, W, 4) RGBA, got "
                     f"shape {frame.shape}")
  if frame.shape[0] < 1 or frame.shape[1] < 1:
    raise ValueError(f"a frame must not be empty, got shape {frame.shape}")
  if frame.shape[2] == 1:
    return np.repeat(frame, 3, axis=2)
  return np.ascontiguousarray(frame[..., :3])


def check_box(box: Any, frame_hw: tuple[int, int]) -> np.ndarray:
  """An initial box (x, y, w, h) 0-based pixels as [4] float64; a ValueError when it is not four
  finite numbers, w or h <= 0, or it lies wholly outside the frame of size (height, width)."""
  try:
    b = np.asarray(box, np.float64).reshape(-1)
  except (TypeError, ValueError):
    raise ValueError(f"box={box!r}: expected four numbers x, y, w, h") from None
  if b.shape != (4,) or not np.all(np.isfinite(b)):
    raise ValueError(f"box={box!r}: expected four finite numbers x, y, w, h")
  x, y, w, h = b
  if w <= 0 or h <= 0:
    raise ValueError(f"box={tuple(b.tolist())}: width and height must be > 0")
  fh, fw = frame_hw
  if x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
    raise ValueError(f"box={tuple(b.tolist())} lies outside the {fw}x{fh} frame")
  return b


class Tracker:
  """One sequence at a time, frame by frame, over an `LGTracker`.

  Attributes:
    mode: 'bbox', 'nl' or 'nl_bbox' (see `tracking.tracker`).
    box: the last box, [4] float32 xywh px (None before `initialize`).
    confidence: the last frame's peak score in [0, 1] (the head's sigmoid, before the window;
      None on the first frame, whose box is given).
  """

  def __init__(self, tracker: LGTracker, mode: str = "nl_bbox"):
    mode = Mode.parse(mode)
    if mode.reads_text and not tracker.config.model.language:
      raise ValueError(f"mode={mode!r} needs a sentence, and this config has no language branch "
                       "(model.language=False): use mode 'bbox'")
    self.tracker = tracker
    self.mode = mode
    self.box: np.ndarray | None = None
    self.confidence: float | None = None
    self._state = None
    self._text_len = 0
    self._last = None  # the last box in float64, as the batched path keeps it

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.tracker.config

  def initialize(self, frame: np.ndarray, box: Iterable[float] | None = None,
                 sentence: str | None = None) -> np.ndarray:
    """Starts a sequence on its first frame. `box` (x, y, w, h) 0-based pixels is required in
    modes 'bbox' and 'nl_bbox' and ignored in 'nl'; `sentence` is required in 'nl' and
    'nl_bbox' and ignored in 'bbox'. Returns the first box [4] float32: the given one, or in mode
    'nl' the one the model grounds from the sentence."""
    frame = as_rgb(frame)
    if self.mode.needs_box:
      if box is None:
        raise ValueError(f"mode={self.mode!r} needs a first box (x, y, w, h)")
      box = check_box(box, frame.shape[:2])
    if self.mode.reads_text and (sentence is None or not str(sentence).strip()):
      raise ValueError(f"mode={self.mode!r} needs a non-empty sentence")
    self._state, self._last, self._text_len = self.tracker.start(
        None, 0, 1, frame, box, sentence, self.mode)
    self.box, self.confidence = self._last.astype(np.float32), None
    return self.box

  def track(self, frame: np.ndarray) -> np.ndarray:
    """The target's box [4] float32 xywh px in the next frame."""
    if self._state is None:
      raise ValueError("track() before initialize(): give the first frame and box first")
    frame = as_rgb(frame)
    self._state, boxes, scores = self.tracker.advance(self._state, [frame], [self._last],
                                                      [self._text_len])
    self._last = boxes[0]
    self.box, self.confidence = self._last.astype(np.float32), float(scores[0])
    return self.box


def load_tracker(config: str | ml_collections.ConfigDict, checkpoint: str | None = None,
                 weights: str | None = None, mode: str = "nl_bbox",
                 overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Tracker:
  """A per-frame `Tracker` from a config (a file path, 'path:arg', or a ConfigDict) and either
  a train workdir (`checkpoint`: its latest params) or a converted weights directory
  (`weights`: `python -m lgtrack_jax.weights.convert`). Loads from local paths only."""
  if isinstance(config, str):
    config = config_io.load(config, overrides)
  elif overrides:
    raise ValueError("overrides apply to a config file; edit a ConfigDict directly")
  check_source(checkpoint, weights)
  lg, _ = build_lgtracker(config, checkpoint, weights)
  return Tracker(lg, mode)


def check_source(checkpoint: str | None, weights: str | None) -> None:
  """Exactly one of a train workdir (`checkpoint`, holding a finished checkpoint) or a converted
  weights directory, existing; checked without creating anything (a mistyped path must not
  become a directory)."""
  if bool(checkpoint) == bool(weights):
    raise ValueError("give one of checkpoint (a train workdir) or weights (a converted weights "
                     "directory)")
  where = checkpoint or weights
  if not os.path.isdir(where):
    raise FileNotFoundError(f"{'checkpoint' if checkpoint else 'weights'} directory {where} "
                            "does not exist")
  if checkpoint and checkpoint_lib.latest_step(checkpoint) is None:
    raise FileNotFoundError(f"no checkpoint under {os.path.join(checkpoint, 'checkpoints')}: is "
                            f"{checkpoint!r} a train workdir?")


def build_lgtracker(config: ml_collections.ConfigDict, checkpoint: str | None,
                    weights: str | None = None) -> tuple[LGTracker, int | None]:
  """LGTracker with the latest params of a train workdir (`checkpoint`) or with converted
  weights (`weights`, step None), on the first local device. Returns (tracker, step).

  A checkpoint whose params do not fit the config's model is a one-line ValueError before any
  restore (`checkpoint.check_params`)."""
  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.models import lgtrack
  from lgtrack_jax.tokenizer import Tokenizer
  if weights:
    from lgtrack_jax.weights import pretrained
    params, step = pretrained.load_weights(config, weights), None
  else:
    params, step = checkpoint_lib.load_params(checkpoint, config)
  model = lgtrack.build_model(config)
  tokenizer = None
  if config.model.language:
    tokenizer = Tokenizer(config.model.text.tokenizer or config.model.text.checkpoint,
                          config.model.text.max_len)
  return LGTracker(model, params, config, tokenizer), step
