"""Reader for TrackingNet (no language: box-initialised tracking, mode 0).

On-disk layout:
  <root>/TRAIN_0 .. <root>/TRAIN_11, <root>/TEST   chunks, each downloaded on its own
  <root>/<chunk>/anno/<seq>.txt                     x,y,w,h per frame, 0-based, CRLF line ends,
                                                    negative coordinates where the box leaves the
                                                    image; TEST publishes the first row only
  <root>/<chunk>/frames/<seq>/<n>.jpg               frames 0.jpg, 1.jpg, ... (sorted numerically)

Split "train" is every TRAIN_k chunk (a chunk missing as a whole is reported as a missing part),
"test" is TEST, and "TRAIN_<k>" reads one chunk. A sequence whose annotation is there but whose
frames are not (still zipped) is reported missing. Rows the split does not publish are NaN and
absent.
"""

from __future__ import annotations

import os
import re

import numpy as np

from input_pipeline.sources import parsing
from input_pipeline.sources.base import (Listing, SeqRef, Sequence, absent_rows, data_error,
                                         freeze)

TRAIN_CHUNKS = tuple(f"TRAIN_{k}" for k in range(12))
SPLIT_SIZES = {"train": 30132, "test": 511}
_CHUNK_RE = re.compile(r"TRAIN_\d+")


def _chunks(split: str) -> tuple[str, ...]:
  if split == "train":
    return TRAIN_CHUNKS
  if split == "test":
    return ("TEST",)
  if _CHUNK_RE.fullmatch(split):
    return (split,)
  raise ValueError(f"TrackingNet split must be 'train', 'test' or 'TRAIN_<k>', got {split!r}")


def list_split(root: str, split: str, dataset: str = "trackingnet") -> Listing:
  """The split's sequences: one per `anno/<seq>.txt` of each chunk present."""
  chunks = _chunks(split)
  refs: list[SeqRef] = []
  missing: list[str] = []
  absent_chunks: list[str] = []
  seen: dict[str, str] = {}
  for chunk in chunks:
    anno_dir = os.path.abspath(os.path.join(root, chunk, "anno"))
    if not os.path.isdir(anno_dir):
      absent_chunks.append(chunk)
      continue
    frames_dir = os.path.join(os.path.dirname(anno_dir), "frames")
    present = set(os.listdir(frames_dir)) if os.path.isdir(frames_dir) else set()
    for entry in sorted(os.listdir(anno_dir)):
      if not entry.endswith(".txt"):
        continue
      name = entry[:-4]
      if name in seen:
        raise data_error(dataset, name, os.path.join(anno_dir, entry),
                         f"sequence also annotated in {seen[name]}")
      seen[name] = chunk
      if name not in present:
        missing.append(name)
        continue
      seq_frames = os.path.join(frames_dir, name)
      refs.append(SeqRef(name, seq_frames, (os.path.join(anno_dir, entry), seq_frames),
                         (os.path.join(anno_dir, entry), split == "test")))
  if not refs:
    raise data_error(dataset, None, root, f"no sequence of split {split!r} on disk (expected "
                     f"<root>/{chunks[0]}/anno/<seq>.txt and <root>/{chunks[0]}/frames/<seq>/)")
  expected = SPLIT_SIZES.get(split)
  return Listing(refs, tuple(missing), expected if not absent_chunks else None,
                 tuple(absent_chunks))


def read_sequence(frame_dir: str, anno: str, first_row_only: bool = False,
                  dataset: str = "trackingnet") -> Sequence:
  """Reads one TrackingNet sequence.

  Args:
    frame_dir: `<chunk>/frames/<seq>`.
    anno: `<chunk>/anno/<seq>.txt`.
    first_row_only: the test split publishes only the first frame's box.

  Returns:
    A `Sequence`: gt [N, 4] float64 as written (0-based, coord_base=0), absent [N] bool
    (`0,0,0,0` / NaN rows), no sentence.
  """
  name = os.path.basename(frame_dir)
  gt = parsing.parse_boxes(anno, dataset, name, delimiter=",")
  names = parsing.numbered_frames(parsing.list_dir(frame_dir, dataset, name, "frame directory"),
                                  (".jpg",), dataset, name, frame_dir)
  if os.path.splitext(names[0])[0] != "0":
    raise data_error(dataset, name, os.path.join(frame_dir, "0.jpg"), "missing frame", frame=0)
  meta = None
  if first_row_only and len(gt) == 1 and len(names) > 1:
    gt = np.concatenate([gt, np.full((len(names) - 1, 4), np.nan)])
    meta = {"annotated_frames": "1"}
  if len(names) != len(gt):
    raise data_error(dataset, name, anno, f"{len(gt)} rows but {frame_dir} has {len(names)} "
                     f"frames")
  return freeze(Sequence(dataset=dataset, name=name,
                         frames=tuple(os.path.join(frame_dir, n) for n in names), gt=gt,
                         absent=absent_rows(gt), sentence=None, coord_base=0, meta=meta))


def read(ref: SeqRef, dataset: str = "trackingnet", frames_required: bool = True) -> Sequence:
  """Reads the sequence of a `list_split` ref. The frames are always required: a sequence
  without them is not listed (`Listing.missing`), and the test split's length is theirs."""
  del frames_required
  anno, first_row_only = ref.extra
  return read_sequence(ref.path, anno, first_row_only, dataset)
