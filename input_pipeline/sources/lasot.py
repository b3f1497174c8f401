"""Reader for the LaSOT layout (LaSOT, LaSOT_ext and the built-in synthetic data).

On-disk layout:
  <root>/training_set.txt, <root>/testing_set.txt   one sequence name per line
  <root>/<class>/<class>-<n>/img/%08d.jpg           frame k (0-based) is (k + 1):08d.jpg
  <root>/<class>/<class>-<n>/groundtruth.txt        one `x,y,w,h` row per frame, 1-based pixels
  <root>/<class>/<class>-<n>/nlp.txt                the sentence
  <root>/<class>/<class>-<n>/full_occlusion.txt     0/1 per frame: one comma-separated line
  <root>/<class>/<class>-<n>/out_of_view.txt        (or one value per line)

Every malformed or missing file is a `DataError` naming dataset, sequence, file and line. Images
are never decoded here: the frame list is checked with one directory listing per sequence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import numpy as np

from input_pipeline.sources.base import Sequence, data_error

SPLIT_FILES = {"train": "training_set.txt", "test": "testing_set.txt"}
FRAME_PATTERN = "%08d.jpg"

# The number syntax groundtruth values may use, for diagnosing a bad row: decimal or exponent
# notation and NaN. Infinities are rejected: no annotation tool writes them.
_NUM_RE = re.compile(
    r"[ \t]*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[nN][aA][nN])[ \t]*")
# Whole-file pattern: one C-level match per file instead of a Python loop over ~2500 values; the
# per-line diagnosis only runs once a file is known to be bad.
_FLAG_FILE_RE = re.compile(r"[ \t]*[01][ \t]*(?:[,\n][ \t]*[01][ \t]*)*")


def _read_text(path: str, dataset: str, name: str | None) -> str:
  """Reads a small text file as UTF-8 (a BOM is dropped); missing or undecodable is a DataError."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError:
    raise data_error(dataset, name, path, "missing file") from None
  except OSError as e:
    raise data_error(dataset, name, path, f"unreadable file ({e})") from None
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise data_error(dataset, name, path, f"not UTF-8 text ({e})") from None


def _content_lines(text: str, dataset: str, name: str | None, path: str) -> list[str]:
  """Splits into lines, dropping trailing blank lines; a blank line before the last one is an error.

  Returns the lines with line i (0-based) being line i + 1 of the file.
  """
  lines = text.splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    raise data_error(dataset, name, path, "empty file")
  for i, line in enumerate(lines):
    if not line.strip():
      raise data_error(dataset, name, path, "empty line in the middle of the file", line=i + 1)
  return lines


def parse_groundtruth(path: str, dataset: str = "lasot", name: str | None = None) -> np.ndarray:
  """Parses a LaSOT `groundtruth.txt`.

  Args:
    path: the file; one `x,y,w,h` row per frame, comma-separated, NaN allowed.
    dataset, name: only for error messages.

  Returns:
    [N, 4] float64 boxes exactly as written (NaN where the file says NaN).
  """
  lines = _content_lines(_read_text(path, dataset, name), dataset, name, path)
  # np.loadtxt is the fast path and already strict (it rejects "1_0", "0x10", ragged rows); only
  # infinities slip through it. Any failure is diagnosed line by line for a precise message.
  try:
    gt = np.loadtxt(lines, delimiter=",", comments=None, dtype=np.float64, ndmin=2)
  except ValueError:
    gt = None
  if gt is None or gt.shape != (len(lines), 4) or np.isinf(gt).any():
    _raise_first_bad_row(lines, dataset, name, path)
  return gt


def _raise_first_bad_row(lines: list[str], dataset: str, name: str | None, path: str) -> None:
  """Finds the first malformed groundtruth row and raises a DataError describing it."""
  for i, line in enumerate(lines):
    values = line.split(",")
    if len(values) != 4:
      raise data_error(
          dataset, name, path,
          f"expected 4 comma-separated values x,y,w,h, found {len(values)}: {line!r}", line=i + 1)
    for v in values:
      if _NUM_RE.fullmatch(v) is None:
        raise data_error(dataset, name, path, f"unparsable value {v!r} in row {line!r}",
                         line=i + 1)
  # Not reached for any input seen so far (each row is checked with the same rules as loadtxt);
  # kept so a disagreement between the two still fails loudly.
  raise data_error(dataset, name, path, "malformed groundtruth file")


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
  lines = _content_lines(_read_text(path, dataset, name), dataset, name, path)
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
  sentence = " ".join(_read_text(path, dataset, name).split())
  if not sentence:
    raise data_error(dataset, name, path, "empty sentence")
  return sentence


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


def read_sequence(seq_dir: str, dataset: str = "lasot", *,
                  require_sentence: bool = True) -> Sequence:
  """Reads one LaSOT-layout sequence directory (`<root>/<class>/<class>-<n>`).

  Args:
    seq_dir: the sequence directory; its base name is the sequence name.
    dataset: dataset name recorded in the `Sequence` and in error messages.
    require_sentence: when False a missing `nlp.txt` gives `sentence=None` (an empty one is still
      an error).

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
  absent = occluded | out_of_view | np.all(gt == 0, axis=1) | np.any(np.isnan(gt), axis=1)
  nlp_path = os.path.join(seq_dir, "nlp.txt")
  if require_sentence or os.path.exists(nlp_path):
    sentence = parse_sentence(nlp_path, dataset, name)
  else:
    sentence = None
  frames = _frame_paths(seq_dir, n, dataset, name)
  gt.setflags(write=False)
  absent.setflags(write=False)
  return Sequence(dataset=dataset, name=name, frames=frames, gt=gt, absent=absent,
                  sentence=sentence, coord_base=1)


def split_names(root: str, split: str, dataset: str = "lasot") -> list[str]:
  """Sequence names listed in `<root>/training_set.txt` or `<root>/testing_set.txt`, in order."""
  if split not in SPLIT_FILES:
    raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
  path = os.path.join(root, SPLIT_FILES[split])
  if not os.path.isfile(path):
    raise data_error(dataset, None, path, f"no split list for split {split!r}")
  names: list[str] = []
  seen: dict[str, int] = {}
  for i, line in enumerate(_read_text(path, dataset, None).splitlines()):
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


def load_split(root: str, split: str, dataset: str = "lasot",
               sequences: Iterable[str] | None = None, *,
               require_sentence: bool = True) -> list[Sequence]:
  """Reads every sequence of a split, in the order of the split list.

  Args:
    root: dataset root holding the split lists and `<class>/<class>-<n>/` folders.
    split: "train" or "test".
    dataset: dataset name recorded in each `Sequence` and in error messages.
    sequences: if given, only these names are read; a name not in the split list is a DataError.
    require_sentence: passed to `read_sequence`.

  Returns:
    The sequences, in split-list order.
  """
  names = split_names(root, split, dataset)
  if sequences is not None:
    if isinstance(sequences, str):
      raise TypeError("sequences must be a collection of names, not a single string")
    wanted = set(sequences)
    unknown = sorted(wanted.difference(names))
    if unknown:
      raise data_error(dataset, None, os.path.join(root, SPLIT_FILES[split]),
                       f"requested sequences not in split {split!r}: {unknown}")
    names = [n for n in names if n in wanted]
  out = []
  for seq in names:
    seq_dir = os.path.join(root, seq.rsplit("-", 1)[0], seq)
    if not os.path.isdir(seq_dir):
      raise data_error(dataset, seq, seq_dir,
                       f"sequence listed in {SPLIT_FILES[split]} has no directory")
    out.append(read_sequence(seq_dir, dataset, require_sentence=require_sentence))
  return out
