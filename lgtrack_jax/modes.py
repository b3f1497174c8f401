"""The evaluation modes: how a sequence starts, used by every entry point and the tracker.

'bbox': the first box only (model mode 0). 'nl_bbox': box and sentence (model mode 2). 'nl': the
sentence only: the model grounds the first box on the whole first frame (model mode 1), then
tracks from it as in 'nl_bbox' (model mode 2).
"""

from __future__ import annotations

import enum


class Mode(enum.StrEnum):
  """A mode; equal to its name as a string ('bbox' == Mode.BBOX)."""

  BBOX = "bbox"
  NL = "nl"
  NL_BBOX = "nl_bbox"

  @classmethod
  def parse(cls, value: str) -> Mode:
    """`value` as a Mode; a one-line ValueError naming the choices otherwise."""
    try:
      return cls(value)
    except ValueError:
      raise ValueError(f"mode={value!r}: expected one of {NAMES}") from None

  @property
  def needs_box(self) -> bool:
    """Whether the first frame's box is given (else the model grounds it)."""
    return self is not Mode.NL

  @property
  def reads_text(self) -> bool:
    """Whether the sentence is read (it is ignored in 'bbox' mode)."""
    return self is not Mode.BBOX

  @property
  def model_mode(self) -> int:
    """The model's mode on the frames after the first (`LGTrack`: 0 box, 2 box + language)."""
    return 0 if self is Mode.BBOX else 2


NAMES = [m.value for m in Mode]
