"""LGTrack as a tracker of the GOT-10k toolkit (`pip install got10k==0.1.3`).

  from got10k.experiments import ExperimentGOT10k
  from lgtrack_jax.integrations.got10k import LGTrackGOT10k
  tracker = LGTrackGOT10k("configs/lgtrack_b256.py", checkpoint="runs/x")    # mode 'bbox'
  experiment = ExperimentGOT10k("data/GOT-10k", subset="val")
  experiment.run(tracker)
  experiment.report([tracker.name])   # AO, SR in [0, 1]; eval.py reports them in percent

The toolkit's `Tracker.track` opens each frame with Pillow (converted to RGB), calls
`init(image, box)` on the first with the first row of `groundtruth.txt` as it is in the file
(x, y, w, h, 0-based pixels: GOT-10k's convention and the API's, so no conversion), then
`update(image) -> box` on each later frame, and writes the boxes with 3 decimals. Frame 0's
recorded box is the given one. The other `got10k.experiments` (OTB, LaSOT, ...) drive the same
methods with their files' boxes as they are (1-based there), read here as 0-based, as every
tracker of that toolkit reads them.

GOT-10k has no sentences, hence mode 'bbox'. Modes 'nl_bbox' / 'nl' take `sentences`
{sequence name: sentence}: the toolkit's `init` is not told the sequence, so `track` (which the
experiments call once per sequence) names it after the folder of its frames (its parent when that
folder is `img`, `imgs` or `color`); a caller driving `init` / `update` itself calls
`set_sequence(name)` first.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import ml_collections
import numpy as np

try:
  from got10k.trackers import Tracker as _ToolkitTracker
except ImportError:
  raise ImportError("lgtrack_jax.integrations.got10k needs the GOT-10k toolkit: "
                    "pip install got10k==0.1.3 (or lgtrack_jax[got10k])") from None

from lgtrack_jax.modes import Mode
from lgtrack_jax.tracking import online

_FRAME_FOLDERS = ("img", "imgs", "color")  # LaSOT / OTB / VOT keep frames in a subfolder


def sequence_name(frame_path: str) -> str:
  """The sequence a frame file belongs to: its folder, or that folder's parent when the folder
  is one of `_FRAME_FOLDERS` ('.../GOT-10k_Val_000001/00000001.jpg' -> 'GOT-10k_Val_000001',
  '.../airplane-1/img/00000001.jpg' -> 'airplane-1')."""
  folder = os.path.dirname(os.path.abspath(frame_path))
  if os.path.basename(folder) in _FRAME_FOLDERS:
    folder = os.path.dirname(folder)
  return os.path.basename(folder)


def to_array(image: Any) -> np.ndarray:
  """A PIL image (any mode) or a numpy frame -> [H, W, 3] uint8 RGB."""
  if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL, without importing it here
    image = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
  return online.as_rgb(image)


class LGTrackGOT10k(_ToolkitTracker):
  """A `got10k.trackers.Tracker` over `lgtrack_jax.load_tracker` (see the module docstring).

  Args:
    config: a config file path ('configs/x.py' or 'configs/x.py:arg') or a ConfigDict.
    checkpoint: a train workdir (its latest params); or
    weights: a converted weights directory.
    mode: 'bbox' (default: GOT-10k has no sentences), 'nl_bbox' or 'nl' (both need `sentences`).
    name: the tracker's name: the toolkit's result and report folder.
    sentences: {sequence name: sentence}, for modes 'nl_bbox' and 'nl'.
    overrides: config overrides, when `config` is a file (see `config_io.load`).
  """

  def __init__(self, config: str | ml_collections.ConfigDict, checkpoint: str | None = None,
               weights: str | None = None, mode: str = "bbox", name: str = "LGTrack",
               sentences: Mapping[str, str] | None = None,
               overrides: Mapping[str, Any] | Iterable[str] | None = None):
    super().__init__(name=name, is_deterministic=True)  # one repetition per sequence suffices
    if Mode.parse(mode).reads_text and not sentences:
      raise ValueError(f"mode={mode!r} needs sentences={{sequence name: sentence}}: GOT-10k has "
                       "none; use mode 'bbox'")
    self.sentences = dict(sentences or {})
    self.sequence: str | None = None
    self.tracker = online.load_tracker(config, checkpoint=checkpoint, weights=weights, mode=mode,
                                       overrides=overrides)

  @property
  def mode(self) -> str:
    return self.tracker.mode

  def set_sequence(self, name: str) -> None:
    """Names the sequence the next `init` starts (its sentence, in modes 'nl_bbox' / 'nl')."""
    self.sequence = name

  def track(self, img_files: Sequence[str], box: np.ndarray, visualize: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """The toolkit's per-sequence loop (boxes [N, 4] float64, times [N] s), after naming the
    sequence from its frames' folder."""
    if len(img_files):
      self.set_sequence(sequence_name(img_files[0]))
    return super().track(img_files, box, visualize=visualize)

  def init(self, image: Any, box: Iterable[float]) -> np.ndarray:
    """Starts a sequence: `image` a PIL image (or [H, W, 3] uint8 array), `box` (x, y, w, h)
    0-based pixels. Returns the first box [4] float64."""
    sentence = None
    if self.mode.reads_text:
      if self.sequence not in self.sentences:
        raise ValueError(f"mode={self.mode!r}: no sentence for sequence {self.sequence!r} in "
                         f"sentences ({len(self.sentences)} given)")
      sentence = self.sentences[self.sequence]
    out = self.tracker.initialize(to_array(image), box=box, sentence=sentence)
    return np.asarray(out, np.float64)

  def update(self, image: Any) -> np.ndarray:
    """The target's box in the next frame: [4] float64 x, y, w, h, 0-based pixels."""
    return np.asarray(self.tracker.track(to_array(image)), np.float64)

  @property
  def confidence(self) -> float | None:
    """The last frame's peak score in [0, 1] (None on the first frame)."""
    return self.tracker.confidence
