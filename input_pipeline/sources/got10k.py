"""Reader for GOT-10k (no language: its sequences train box-initialised tracking, mode 0).

On-disk layout (the root may also be a split folder itself):
  <root>/<split>/list.txt                       sequence names, one per line (train, val, test)
  <root>/<split>/<seq>/%08d.jpg                 frames, numbered from 1
  <root>/<split>/<seq>/groundtruth.txt          x,y,w,h per frame, 0-based pixels; the test split
                                                publishes the first row only
  <root>/<split>/<seq>/absence.label            0/1 per frame (train, val)
  <root>/<split>/<seq>/cover.label              0..8 per frame: visible share of the target in
                                                eighths (train, val)
  <root>/<split>/<seq>/meta_info.ini            `[METAINFO]` key: value lines (object and motion
                                                class, ...), kept in `Sequence.meta`

`Sequence.cover` carries the cover labels for the GOT-10k protocol (which scores cover > 0 frames
only). Rows the split does not publish (test frames after the first) are NaN and absent.
"""

from __future__ import annotations

import configparser
import os

import numpy as np

from input_pipeline.sources import parsing
from input_pipeline.sources.base import (DataError, Listing, SeqRef, Sequence, absent_rows,
                                         data_error, freeze)

SPLIT_SIZES = {"train": 9335, "val": 180, "test": 180}
FRAME_PATTERN = "%08d.jpg"
_FILES = ("groundtruth.txt", "absence.label", "cover.label", "meta_info.ini")


def _split_dir(root: str, split: str) -> str:
  d = os.path.join(root, split)
  if os.path.isdir(d):
    return d
  if os.path.isfile(os.path.join(root, "list.txt")):
    return root  # the root is the split folder
  return d  # missing: reported by the caller


def list_split(root: str, split: str, dataset: str = "got10k") -> Listing:
  """The split's sequences from `list.txt` (or, without it, the `GOT-10k_*` folders)."""
  if split not in SPLIT_SIZES:
    raise ValueError(f"GOT-10k split must be one of {sorted(SPLIT_SIZES)}, got {split!r}")
  folder = _split_dir(root, split)
  list_path = os.path.join(folder, "list.txt")
  if os.path.isfile(list_path):
    names = [line.strip() for line in parsing.read_text(list_path, dataset, None).splitlines()
             if line.strip()]
    if len(set(names)) != len(names):
      dup = next(n for i, n in enumerate(names) if n in names[:i])
      raise data_error(dataset, dup, list_path, "sequence listed twice")
    expected = len(names)
  else:
    names = sorted(e for e in parsing.list_dir(folder, dataset, None, f"{split} folder")
                   if e.startswith("GOT-10k_") and os.path.isdir(os.path.join(folder, e)))
    expected = SPLIT_SIZES[split]
  refs, missing = [], []
  for name in names:
    seq_dir = os.path.abspath(os.path.join(folder, name))
    if os.path.isdir(seq_dir):
      refs.append(SeqRef(name, seq_dir, tuple(os.path.join(seq_dir, f) for f in _FILES)
                         + (seq_dir,), (split,)))
    else:
      missing.append(name)
  if not refs:
    raise data_error(dataset, None, folder, f"no sequence of split {split!r} on disk (expected "
                     f"<root>/{split}/GOT-10k_<Split>_<n>/)")
  return Listing(refs, tuple(missing), expected)


def parse_meta(path: str, dataset: str, name: str) -> dict[str, str]:
  """`meta_info.ini` -> {key: value} of its `[METAINFO]` section; {} when the file is absent."""
  if not os.path.exists(path):
    return {}
  parser = configparser.ConfigParser(interpolation=None)
  try:
    parser.read_string(parsing.read_text(path, dataset, name), source=path)
  except configparser.Error as e:
    line = getattr(e, "lineno", None)
    raise data_error(dataset, name, path, f"malformed ini file ({e.message})",
                     line=line) from None
  if not parser.has_section("METAINFO"):
    raise data_error(dataset, name, path, "no [METAINFO] section")
  return dict(parser.items("METAINFO"))


def read_sequence(seq_dir: str, split: str, dataset: str = "got10k", *,
                  frames_required: bool = True) -> Sequence:
  """Reads one GOT-10k sequence folder. `frames_required=False`: missing or incomplete frames
  give `frames=()` instead of a DataError (scoring reads only the annotations), except on the
  test split, whose length only the frames tell.

  Returns:
    A `Sequence`: gt [N, 4] float64 (0-based, coord_base=0; NaN rows past the first on the test
    split), absent [N] bool (absence.label, cover 0, `0,0,0,0` / NaN rows), cover [N] int8 (None
    on the test split), no sentence, meta from `meta_info.ini`.
  """
  seq_dir = os.path.abspath(seq_dir)
  name = os.path.basename(seq_dir)
  gt_path = os.path.join(seq_dir, "groundtruth.txt")
  gt = parsing.parse_boxes(gt_path, dataset, name, delimiter=",")
  published_first_row_only = split == "test" and len(gt) == 1
  try:
    frames = _frame_paths(seq_dir, None if published_first_row_only else len(gt), dataset, name,
                          gt_path)
  except DataError:
    if frames_required or published_first_row_only:
      raise
    frames = ()
  n = len(frames) if published_first_row_only else len(gt)
  meta = parse_meta(os.path.join(seq_dir, "meta_info.ini"), dataset, name)
  if published_first_row_only:
    gt = np.concatenate([gt, np.full((n - 1, 4), np.nan)])
    cover = None
    absent = absent_rows(gt)
    meta["annotated_frames"] = "1"
  else:
    absence = parsing.parse_int_column(os.path.join(seq_dir, "absence.label"), n, range(2),
                                       dataset, name)
    cover = parsing.parse_int_column(os.path.join(seq_dir, "cover.label"), n, range(9),
                                     dataset, name).astype(np.int8)
    absent = (absence == 1) | (cover == 0) | absent_rows(gt)
  return freeze(Sequence(dataset=dataset, name=name, frames=tuple(frames), gt=gt, absent=absent,
                         sentence=None, coord_base=0, cover=cover, meta=meta or None))


def _frame_paths(seq_dir: str, num_rows: int | None, dataset: str, name: str, gt_path: str
                 ) -> tuple[str, ...]:
  """Frames 1..N of the folder, N = `num_rows` (None: as many as there are .jpg files); a
  DataError for a count mismatch or a gap."""
  listing = set(os.listdir(seq_dir))
  num_images = sum(1 for e in listing if e.lower().endswith(".jpg"))
  n = num_images if num_rows is None else num_rows
  if num_images != n:
    raise data_error(dataset, name, gt_path, f"{num_rows} rows but {seq_dir} has {num_images} "
                     f".jpg frames")
  frames = []
  for k in range(n):
    file = FRAME_PATTERN % (k + 1)
    if file not in listing:
      raise data_error(dataset, name, os.path.join(seq_dir, file), "missing frame", frame=k)
    frames.append(os.path.join(seq_dir, file))
  return tuple(frames)


def read(ref: SeqRef, dataset: str = "got10k", frames_required: bool = True) -> Sequence:
  """Reads the sequence of a `list_split` ref."""
  (split,) = ref.extra
  return read_sequence(ref.path, split, dataset, frames_required=frames_required)
