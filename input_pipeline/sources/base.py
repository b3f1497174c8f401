"""The record every dataset reader returns, and the errors it raises.

A dataset format is parsed in exactly one place (one module under `sources/`); training and
evaluation both read sequences through it. Plain Python + numpy + Pillow: no TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

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
    frames: absolute frame paths in temporal order, length N; () when the split was read for
      scoring only (`sources.load(..., frames_required=False)`) and the frames are not on disk.
    gt: [N, 4] float64 ground-truth boxes x, y, w, h exactly as written in the file (in the
      dataset's own coordinate base, see `coord_base`); NaN rows where the file says NaN.
    absent: [N] bool, True where the target is not visible (full occlusion, out of view, or an
      all-zero / NaN ground-truth row).
    sentence: the language description, or None when the dataset has none; "" when its file is
      empty (refused where a sentence is needed: by the tracker's text modes and by training).
    coord_base: 1 when the files use 1-based pixel coordinates (LaSOT, OTB), 0 when 0-based.
    cover: [N] int8 GOT-10k visible-area level per frame (0 = absent ... 8 = fully visible), used
      by the GOT-10k protocol; None for datasets without it.
    meta: extra per-sequence facts as strings (GOT-10k `meta_info.ini`, RefCOCOg image id, ...).
  """

  dataset: str
  name: str
  frames: tuple[str, ...]
  gt: np.ndarray
  absent: np.ndarray
  sentence: str | None
  coord_base: int = 1
  cover: np.ndarray | None = None
  meta: Mapping[str, str] | None = None

  def __len__(self) -> int:
    """N frames: the ground-truth rows (the readers check that the frames match them)."""
    return len(self.gt)

  @property
  def has_frames(self) -> bool:
    """Whether the frames were listed (False for a split read without them, for scoring)."""
    return len(self.frames) == len(self.gt)

  @property
  def boxes(self) -> np.ndarray:
    """[N, 4] float64 x, y, w, h in 0-based continuous pixel coordinates (model space)."""
    return self.gt - np.array([self.coord_base, self.coord_base, 0, 0], np.float64)

  def to_file_coords(self, boxes: np.ndarray) -> np.ndarray:
    """Maps [..., 4] model-space x, y, w, h boxes to this dataset's file convention."""
    return np.asarray(boxes, np.float64) + np.array(
        [self.coord_base, self.coord_base, 0, 0], np.float64)

  def load_frame(self, i: int) -> np.ndarray:
    """Decodes frame i as a [H, W, 3] uint8 RGB array; a missing or corrupt file is a DataError.

    16-bit grayscale frames keep their top 8 bits (Pillow's RGB conversion would clip them)."""
    if not self.has_frames:
      raise data_error(self.dataset, self.name, None, "the frames were not read (the split was "
                       "loaded for scoring only, without its images)", frame=i)
    path = self.frames[i]
    try:
      with Image.open(path) as im:
        return to_rgb(im)
    except FileNotFoundError:
      raise data_error(self.dataset, self.name, path, "missing frame", frame=i) from None
    except (OSError, SyntaxError, ValueError) as e:
      raise data_error(self.dataset, self.name, path, f"corrupt image ({e})", frame=i) from None


def to_rgb(im: Image.Image) -> np.ndarray:
  """A decoded image as [H, W, 3] uint8 RGB. 16-bit grayscale (modes I;16*, and I, which older
  Pillows give 16-bit PNGs) is scaled to 8 bits (>> 8): `convert("RGB")` clips it at 255, which
  turns a 16-bit frame all white."""
  if im.mode.startswith("I;16") or im.mode == "I":
    gray = (np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
  return np.asarray(im.convert("RGB"))


def absent_rows(gt: np.ndarray) -> np.ndarray:
  """[N] bool: rows that carry no box at all, `0,0,0,0` or any NaN.

  Args:
    gt: [N, 4] float64 boxes as written.
  """
  return np.all(gt == 0, axis=1) | np.any(np.isnan(gt), axis=1)


def freeze(seq: Sequence) -> Sequence:
  """Makes the record's arrays read-only (it is shared by training and evaluation); returns it."""
  for a in (seq.gt, seq.absent, seq.cover):
    if a is not None:
      a.setflags(write=False)
  return seq


@dataclasses.dataclass(frozen=True)
class SeqRef:
  """A sequence found by a cheap directory scan, before any of its annotation files is parsed.

  Attributes:
    name: sequence name.
    path: its directory (what the reader parses).
    deps: files and directories whose sizes and mtimes key the cached record: the annotation
      files and the frame directory (whose mtime changes when a frame is added or removed).
    extra: reader-specific, hashable facts found while listing (e.g. OTB's frame range).
  """

  name: str
  path: str
  deps: tuple[str, ...]
  extra: tuple = ()


@dataclasses.dataclass(frozen=True)
class Listing:
  """What a reader found for one split.

  Attributes:
    refs: the sequences present on disk, in split order.
    missing: names of the split that are not on disk (a partial download), in split order.
    expected: the size of the complete split when it is known (official lists), else None.
    missing_parts: parts of the download that are absent as a whole when their sequence names
      are not known (e.g. TrackingNet's `TRAIN_5` chunk).
  """

  refs: list[SeqRef]
  missing: tuple[str, ...] = ()
  expected: int | None = None
  missing_parts: tuple[str, ...] = ()


def select(listing: Listing, sequences: Iterable[str] | None, dataset: str, split: str,
           where: str) -> list[SeqRef]:
  """The refs of `sequences` (all present ones when None), in split order.

  A requested name outside the split, or inside it but not on disk, is a DataError: the caller
  asked for it explicitly.
  """
  if sequences is None:
    return list(listing.refs)
  if isinstance(sequences, str):
    raise TypeError("sequences must be a collection of names, not a single string")
  wanted = set(sequences)
  present = {r.name for r in listing.refs}
  unknown = sorted(wanted - present - set(listing.missing))
  if unknown:
    raise data_error(dataset, None, where, f"requested sequences not in split {split!r}: "
                     f"{unknown}")
  absent = sorted(wanted & set(listing.missing))
  if absent:
    raise data_error(dataset, None, where, f"requested sequences of split {split!r} are not on "
                     f"disk: {absent}")
  return [r for r in listing.refs if r.name in wanted]
