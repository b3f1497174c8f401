"""Reader for the LaSOT layout (LaSOT, LaSOT_ext and the built-in synthetic data).

On-disk layout:
  <root>/training_set.txt, <root>/testing_set.txt   one sequence name per line; optional for LaSOT
                                                    and LaSOT_ext, whose official lists are
                                                    built in (`lasot_splits.py`)
  <root>/<class>/<class>-<n>/img/%08d.jpg           frame k (0-based) is (k + 1):08d.jpg
  <root>/<class>/<class>-<n>/groundtruth.txt        one `x,y,w,h` row per frame, 1-based pixels
  <root>/<class>/<class>-<n>/nlp.txt                the sentence
  <root>/<class>/<class>-<n>/full_occlusion.txt     0/1 per frame: one comma-separated line
  <root>/<class>/<class>-<n>/out_of_view.txt        (or one value per line)

Every malformed or missing file is a `DataError` naming dataset, sequence, file and line. Images
are never decoded here: the frame list is checked with one directory listing per sequence. A split
whose sequences are only partly on disk (LaSOT comes as one archive per class) is read as far as
it goes, and the missing names are reported (`Listing.missing`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import numpy as np
from absl import logging

from input_pipeline.sources import lasot_splits, parsing
from input_pipeline.sources.base import (DataError, Listing, SeqRef, Sequence, absent_rows,
                                         data_error, freeze, select)

SPLIT_FILES = {"train": "training_set.txt", "test": "testing_set.txt"}
FRAME_PATTERN = "%08d.jpg"
ANNOTATION_FILES = ("groundtruth.txt", "full_occlusion.txt", "out_of_view.txt", "nlp.txt")

# Whole-file pattern: one C-level match per file instead of a Python loop over ~2500 values; the
# per-line diagnosis only runs once a file is known to be bad.
_FLAG_FILE_RE = re.compile(r"[ \t]*[01][ \t]*(?:[,\n][ \t]*[01][ \t]*)*")
_OFFICIAL = {"lasot": lasot_splits.lasot_split, "lasot_ext": lasot_splits.lasot_ext_split}


def parse_groundtruth(path: str, dataset: str = "lasot", name: str | None = None) -> np.ndarray:
  """Parses a LaSOT `groundtruth.txt`.

  Args:
    path: the file; one `x,y,w,h` row per frame, comma-separated, NaN allowed.
    dataset, name: only for error messages.

  Returns:
    [N, 4] float64 boxes exactly as written (NaN where the file says NaN).
  """
  return parsing.parse_boxes(path, dataset, name, delimiter=",")


def parse_flags(path: str, num_frames: int, dataset: str = "lasot",
                name: str | None = None) -> np.ndarray:
  """Parses a 0/1 per-frame flag file (`full_occlusion.txt`, `out_of_view.txt`).

  LaSOT writes these as ONE comma-separated line; one value per line is accepted too.

  Args:
    path: the file.
    num_frames: N, the number of groundtruth rows the flags must match.
    dataset, name: only for error messages.

  Returns:
    [N] bool.
  """
  lines = parsing.content_lines(parsing.read_text(path, dataset, name), dataset, name, path)
  body = "\n".join(lines)
  if _FLAG_FILE_RE.fullmatch(body) is None:
    for i, line in enumerate(lines):
      for v in line.split(","):
        if v.strip() not in ("0", "1"):
          raise data_error(dataset, name, path,
                           f"flag value {v.strip()!r} is not 0 or 1 in {line!r}", line=i + 1)
    raise data_error(dataset, name, path, "malformed flag file")
  flags = np.array(re.split(r"[,\s]+", body.strip())) == "1"
  if flags.shape[0] != num_frames:
    raise data_error(dataset, name, path,
                     f"{flags.shape[0]} flags but groundtruth.txt has {num_frames} rows")
  return flags


def parse_sentence(path: str, dataset: str = "lasot", name: str | None = None) -> str:
  """Reads `nlp.txt`; runs of whitespace (including line breaks) collapse to one space."""
  return parsing.parse_sentence(path, dataset, name)


def _frame_paths(seq_dir: str, num_frames: int, dataset: str, name: str) -> tuple[str, ...]:
  """Checks img/ holds exactly frames 1..N and returns their absolute paths, in order."""
  img_dir = os.path.join(seq_dir, "img")
  try:
    listing = set(os.listdir(img_dir))
  except FileNotFoundError:
    raise data_error(dataset, name, img_dir, "missing image directory") from None
  except NotADirectoryError:
    raise data_error(dataset, name, img_dir, "image directory is not a directory") from None
  names = [FRAME_PATTERN % (k + 1) for k in range(num_frames)]
  missing = next((k for k, n in enumerate(names) if n not in listing), None)
  num_images = sum(1 for n in listing if n.lower().endswith(".jpg"))
  if num_images != num_frames:
    first_missing = ("" if missing is None else
                     f"; first missing frame: {os.path.join(img_dir, names[missing])}")
    raise data_error(
        dataset, name, img_dir,
        f"{num_images} .jpg images but groundtruth.txt has {num_frames} rows{first_missing}")
  if missing is not None:
    raise data_error(dataset, name, os.path.join(img_dir, names[missing]), "missing frame",
                     frame=missing)
  return tuple(os.path.join(img_dir, n) for n in names)


def read_sequence(seq_dir: str, dataset: str = "lasot", *, require_sentence: bool = True,
                  frames_required: bool = True) -> Sequence:
  """Reads one LaSOT-layout sequence directory (`<root>/<class>/<class>-<n>`).

  Args:
    seq_dir: the sequence directory; its base name is the sequence name.
    dataset: dataset name recorded in the `Sequence` and in error messages.
    require_sentence: when False a missing `nlp.txt` gives `sentence=None` (an empty one gives
      "" either way).
    frames_required: when False, a missing or incomplete `img/` gives `frames=()` instead of a
      DataError (scoring reads only the annotations).

  Returns:
    A `Sequence` with gt [N, 4] float64 (1-based, as written), absent [N] bool (full occlusion,
    out of view, all-zero or NaN row) and coord_base=1; both arrays are read-only, since the
    record is shared by training and evaluation.
  """
  seq_dir = os.path.abspath(seq_dir)
  name = os.path.basename(seq_dir)
  gt = parse_groundtruth(os.path.join(seq_dir, "groundtruth.txt"), dataset, name)
  n = gt.shape[0]
  occluded = parse_flags(os.path.join(seq_dir, "full_occlusion.txt"), n, dataset, name)
  out_of_view = parse_flags(os.path.join(seq_dir, "out_of_view.txt"), n, dataset, name)
  # LaSOT marks absence with the flag files, but some absent frames only show as 0,0,0,0 rows
  # (and NaN rows carry no box at all); all of them count as absent.
  absent = occluded | out_of_view | absent_rows(gt)
  nlp_path = os.path.join(seq_dir, "nlp.txt")
  if require_sentence or os.path.exists(nlp_path):
    sentence = parse_sentence(nlp_path, dataset, name)
  else:
    sentence = None
  try:
    frames = _frame_paths(seq_dir, n, dataset, name)
  except DataError:
    if frames_required:
      raise
    frames = ()
  return freeze(Sequence(dataset=dataset, name=name, frames=frames, gt=gt, absent=absent,
                         sentence=sentence, coord_base=1))


def split_names(root: str, split: str, dataset: str = "lasot") -> list[str]:
  """The names of a split, in order.

  `<root>/training_set.txt` / `<root>/testing_set.txt` when the root has them (one name per
  line); otherwise the official lists built into `lasot_splits` for LaSOT and LaSOT_ext. Any other
  dataset in this layout (the synthetic data) must bring its lists.
  """
  if split not in SPLIT_FILES:
    raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
  path = os.path.join(root, SPLIT_FILES[split])
  if not os.path.isfile(path):
    if dataset in _OFFICIAL:
      try:
        return _OFFICIAL[dataset](split)
      except ValueError as e:
        raise data_error(dataset, None, root, str(e)) from None
    raise data_error(dataset, None, path, f"no split list for split {split!r}")
  names: list[str] = []
  seen: dict[str, int] = {}
  for i, line in enumerate(parsing.read_text(path, dataset, None).splitlines()):
    seq = line.strip()
    if not seq:
      continue
    if "-" not in seq or os.sep in seq or seq.startswith("."):
      raise data_error(dataset, None, path, f"bad sequence name {seq!r} (expected <class>-<n>)",
                       line=i + 1)
    if seq in seen:
      raise data_error(dataset, None, path, f"sequence {seq!r} listed twice (first on line "
                       f"{seen[seq]})", line=i + 1)
    seen[seq] = i + 1
    names.append(seq)
  if not names:
    raise data_error(dataset, None, path, "split list is empty")
  return names


def list_split(root: str, split: str, dataset: str = "lasot") -> Listing:
  """Finds the split's sequence directories (one `stat` each; no annotation file is read).

  A listed sequence without its directory is reported in `Listing.missing` (a partial download);
  a split with none of its sequences on disk is a DataError (a wrong root, most likely).
  """
  names = split_names(root, split, dataset)
  refs, missing = [], []
  for seq in names:
    seq_dir = os.path.abspath(os.path.join(root, seq.rsplit("-", 1)[0], seq))
    if os.path.isdir(seq_dir):
      deps = tuple(os.path.join(seq_dir, f) for f in ANNOTATION_FILES) + (
          os.path.join(seq_dir, "img"),)
      refs.append(SeqRef(seq, seq_dir, deps))
    else:
      missing.append(seq)
  if not refs:
    raise data_error(dataset, None, root,
                     f"none of the {len(names)} sequences of split {split!r} is on disk (expected "
                     f"<root>/<class>/<class>-<n>/, e.g. {names[0].rsplit('-', 1)[0]}/{names[0]})")
  return Listing(refs, tuple(missing), len(names))


def read(ref: SeqRef, dataset: str = "lasot", frames_required: bool = True) -> Sequence:
  """Reads the sequence of a `list_split` ref. LaSOT-layout sentence files are required."""
  return read_sequence(ref.path, dataset, require_sentence=True, frames_required=frames_required)


def load_split(root: str, split: str, dataset: str = "lasot",
               sequences: Iterable[str] | None = None, *,
               require_sentence: bool = True) -> list[Sequence]:
  """Reads every sequence of a split that is on disk, in split order (no index cache).

  Args:
    root: dataset root holding `<class>/<class>-<n>/` folders (and, optionally, split lists).
    split: "train" or "test".
    dataset: dataset name recorded in each `Sequence` and in error messages.
    sequences: if given, only these names are read; a name not in the split, or not on disk, is
      a DataError.
    require_sentence: passed to `read_sequence`.

  Returns:
    The sequences, in split-list order. Missing sequences are logged (see `list_split`).
  """
  listing = list_split(root, split, dataset)
  refs = select(listing, sequences, dataset, split, root)
  if sequences is None and listing.missing:
    logging.warning("%s %s: %d of %d sequences are not on disk under %s (partial download), "
                    "e.g. %s", dataset, split, len(listing.missing), listing.expected, root,
                    ", ".join(listing.missing[:5]))
  return [read_sequence(r.path, dataset, require_sentence=require_sentence) for r in refs]
