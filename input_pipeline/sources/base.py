"""The record every dataset reader returns, and the errors it raises.

A dataset format is parsed in exactly one place (one module under `sources/`); training and
evaluation both read sequences through it. Plain Python + numpy + Pillow: no TensorFlow here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image


class DataError(ValueError):
  """Malformed or missing dataset input. The message names dataset, sequence, file, line/frame."""


def data_error(dataset: str, sequence: str | None, path: str | None, what: str,
               line: int | None = None, frame: int | None = None) -> DataError:
  """Builds a `DataError` whose message says what is wrong and exactly where."""
  where = [f"dataset={dataset}"]
  if sequence is not None:
    where.append(f"sequence={sequence}")
  if path is not None:
    where.append(f"file={path}")
  if line is not None:
    where.append(f"line={line}")
  if frame is not None:
    where.append(f"frame={frame}")
  return DataError(f"{what} [{', '.join(where)}]")


@dataclasses.dataclass(frozen=True, eq=False)
class Sequence:
  """One annotated video.

  Attributes:
    dataset: dataset name, e.g. "lasot" or "synthetic".
    name: sequence name, e.g. "airplane-1".
    frames: absolute frame paths in temporal order, length N.
    gt: [N, 4] float64 ground-truth boxes x, y, w, h exactly as written in the file (in the
      dataset's own coordinate base, see `coord_base`); NaN rows where the file says NaN.
    absent: [N] bool, True where the target is not visible (full occlusion, out of view, or an
      all-zero / NaN ground-truth row).
    sentence: the language description, or None when the dataset has none.
    coord_base: 1 when the files use 1-based pixel coordinates (LaSOT, OTB), 0 when 0-based.
  """

  dataset: str
  name: str
  frames: tuple[str, ...]
  gt: np.ndarray
  absent: np.ndarray
  sentence: str | None
  coord_base: int = 1

  def __len__(self) -> int:
    return len(self.frames)

  @property
  def boxes(self) -> np.ndarray:
    """[N, 4] float64 x, y, w, h in 0-based continuous pixel coordinates (model space)."""
    return self.gt - np.array([self.coord_base, self.coord_base, 0, 0], np.float64)

  def to_file_coords(self, boxes: np.ndarray) -> np.ndarray:
    """Maps [..., 4] model-space x, y, w, h boxes to this dataset's file convention."""
    return np.asarray(boxes, np.float64) + np.array(
        [self.coord_base, self.coord_base, 0, 0], np.float64)

  def load_frame(self, i: int) -> np.ndarray:
    """Decodes frame i as a [H, W, 3] uint8 RGB array; a missing or corrupt file is a DataError."""
    path = self.frames[i]
    try:
      with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
      raise data_error(self.dataset, self.name, path, "missing frame", frame=i) from None
    except (OSError, SyntaxError, ValueError) as e:
      raise data_error(self.dataset, self.name, path, f"corrupt image ({e})", frame=i) from None
