"""Reader for OTB99-Lang (OTB-100 videos with one sentence each; 51 train / 48 test sequences).

On-disk layout:
  <root>/OTB_query_train/<Seq>.txt, <root>/OTB_query_test/<Seq>.txt   the sentences; the files
                                                                      present define the split
  <root>/OTB_videos/<Seq>/img/%04d.jpg                                frames, 1-based numbers
  <root>/OTB_videos/<Seq>/groundtruth_rect.txt                        x,y,w,h per frame, 1-BASED

Quirks handled (docs/design.md section 9):
  * delimiters: commas, tabs or runs of spaces, mixed even within a file;
  * frame ranges: a few sequences are annotated on part of their image folder only (`FRAME_RANGES`,
    first and last image number, inclusive), and Board's images have 5-digit names;
  * multi-target videos: `Jogging-1`/`Jogging-2`, `Skating2-1`/`Skating2-2` and `Human4-2` share
    one image folder (`OTB_videos/Jogging/`) and use `groundtruth_rect.1.txt` / `.2.txt`. A
    distribution that ships a folder per target (`OTB_videos/Jogging-1/`) is read as such, and a
    folder whose only annotation is `groundtruth_rect.<k>.txt` (Human4) uses it.
Any other sequence must have exactly one image per ground-truth row, numbered from 1: a frame
offset is never guessed.
"""

from __future__ import annotations

import os
import re

from input_pipeline.sources import parsing
from input_pipeline.sources.base import (DataError, Listing, SeqRef, Sequence, absent_rows,
                                         data_error, freeze)

SPLIT_SIZES = {"train": 51, "test": 48}
# Image folder -> (first, last) image number of the annotated range, inclusive.
FRAME_RANGES = {
    "David": (300, 770),
    "BlurCar1": (247, 988),
    "BlurCar3": (3, 359),
    "BlurCar4": (18, 397),
    "Diving": (1, 215),
    "Football1": (1, 74),
    "Freeman3": (1, 460),
    "Freeman4": (1, 283),
}
NAME_DIGITS = {"Board": 5}  # image-name width; 4 otherwise
_TARGET_RE = re.compile(r"(.+)-(\d+)")
_ANNO_RE = re.compile(r"groundtruth_rect\.(\d+)\.txt")


def _resolve(videos: str, name: str, dataset: str) -> tuple[str, str] | None:
  """(image folder, annotation file) of sequence `name`, or None when its video is not on disk."""
  folder = os.path.join(videos, name)
  target = None
  if not os.path.isdir(folder):
    m = _TARGET_RE.fullmatch(name)
    if not m or not os.path.isdir(os.path.join(videos, m.group(1))):
      return None
    folder, target = os.path.join(videos, m.group(1)), m.group(2)
  if target is not None:
    return folder, os.path.join(folder, f"groundtruth_rect.{target}.txt")
  plain = os.path.join(folder, "groundtruth_rect.txt")
  if os.path.exists(plain):
    return folder, plain
  numbered = sorted(e for e in os.listdir(folder) if _ANNO_RE.fullmatch(e))
  if len(numbered) == 1:
    return folder, os.path.join(folder, numbered[0])
  if len(numbered) > 1:
    raise data_error(dataset, name, folder,
                     f"several targets ({', '.join(numbered)}) and no groundtruth_rect.txt: the "
                     f"query file must name one, e.g. {name}-1.txt")
  return folder, plain  # missing: reported when read


def list_split(root: str, split: str, dataset: str = "otb99_lang") -> Listing:
  """The sequences of `OTB_query_<split>/` whose video is on disk (others are `missing`)."""
  if split not in SPLIT_SIZES:
    raise ValueError(f"OTB99-Lang split must be one of {sorted(SPLIT_SIZES)}, got {split!r}")
  queries = os.path.join(root, f"OTB_query_{split}")
  names = sorted(os.path.splitext(e)[0] for e in parsing.list_dir(queries, dataset, None,
                                                                  "sentence directory")
                 if e.endswith(".txt"))
  if not names:
    raise data_error(dataset, None, queries, "no <sequence>.txt sentence files")
  videos = os.path.abspath(os.path.join(root, "OTB_videos"))
  refs, missing = [], []
  for name in names:
    found = _resolve(videos, name, dataset)
    if found is None:
      missing.append(name)
      continue
    folder, anno = found
    query = os.path.abspath(os.path.join(queries, f"{name}.txt"))
    refs.append(SeqRef(name, folder, (anno, os.path.join(folder, "img"), query), (anno, query)))
  if not refs:
    raise data_error(dataset, None, videos, f"none of the {len(names)} videos of split {split!r} "
                     f"is on disk (expected OTB_videos/<Seq>/img/)")
  return Listing(refs, tuple(missing), SPLIT_SIZES[split])


def read_sequence(folder: str, anno: str, query: str, name: str,
                  dataset: str = "otb99_lang", *, frames_required: bool = True) -> Sequence:
  """Reads one OTB video for sequence `name`.

  Args:
    folder: `OTB_videos/<video>` (shared by the targets of a multi-target video).
    anno: its ground-truth file for this target.
    query: the sentence file.
    name: the sequence name (`Jogging-1`).
    frames_required: when False, a missing or incomplete `img/` gives `frames=()` instead of a
      DataError (scoring reads only the annotations).

  Returns:
    A `Sequence`: gt [N, 4] float64 as written (1-based, coord_base=1), absent [N] bool (only
    `0,0,0,0` / NaN rows: OTB has no absence flags), frames of the annotated range.
  """
  gt = parsing.parse_boxes(anno, dataset, name, delimiter="mixed")
  sentence = parsing.parse_sentence(query, dataset, name)
  video = os.path.basename(folder)
  if video in FRAME_RANGES:
    first, last = FRAME_RANGES[video]
    if len(gt) != last - first + 1:
      raise data_error(dataset, name, anno, f"{len(gt)} rows but the annotated range of {video} "
                       f"is images {first}..{last} ({last - first + 1} frames)")
  else:
    first, last = 1, len(gt)
  try:
    frames = _frame_paths(folder, first, last, video in FRAME_RANGES, dataset, name, anno)
  except DataError:
    if frames_required:
      raise
    frames = ()
  return freeze(Sequence(dataset=dataset, name=name, frames=frames, gt=gt,
                         absent=absent_rows(gt), sentence=sentence, coord_base=1,
                         meta={"video": video, "first_image": str(first)}))


def _frame_paths(folder: str, first: int, last: int, ranged: bool, dataset: str, name: str,
                 anno: str) -> tuple[str, ...]:
  """Images `first..last` of `<folder>/img/`; without a FRAME_RANGES entry (`ranged`) the folder
  must hold exactly those. A DataError names the first missing one."""
  video = os.path.basename(folder)
  img_dir = os.path.join(folder, "img")
  listing = set(parsing.list_dir(img_dir, dataset, name, "image directory"))
  if not ranged:
    images = sum(1 for e in listing if e.lower().endswith(".jpg"))
    if images != last - first + 1:
      raise data_error(dataset, name, anno,
                       f"{last - first + 1} rows but {img_dir} has {images} .jpg images; a "
                       f"sequence annotated on part of its images needs an entry in FRAME_RANGES")
  digits = NAME_DIGITS.get(video, 4)
  frames = []
  for i, k in enumerate(range(first, last + 1)):
    file = f"{k:0{digits}d}.jpg"
    if file not in listing:
      raise data_error(dataset, name, os.path.join(img_dir, file), "missing frame", frame=i)
    frames.append(os.path.join(img_dir, file))
  return tuple(frames)


def read(ref: SeqRef, dataset: str = "otb99_lang", frames_required: bool = True) -> Sequence:
  """Reads the sequence of a `list_split` ref."""
  anno, query = ref.extra
  return read_sequence(ref.path, anno, query, ref.name, dataset, frames_required=frames_required)
