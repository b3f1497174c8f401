"""Text-file parsing shared by the dataset readers: strict, fast, and precise when it fails.

Every function raises a `DataError` naming dataset, sequence, file and (1-based) line. The fast
paths are whole-file numpy / regex calls; the per-line diagnosis only runs once a file is known
to be bad. Plain Python + numpy.
"""

from __future__ import annotations

import os
import re

import numpy as np

from input_pipeline.sources.base import data_error

# The number syntax box values may use: decimal or exponent notation and NaN. Infinities are
# rejected: no annotation tool writes them.
NUM_RE = re.compile(
    r"[ \t]*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[nN][aA][nN])[ \t]*")
# Any run of commas, tabs and spaces separates values in the OTB-style "mixed" box files.
_MIXED_SPLIT = re.compile(r"[ \t]*,[ \t]*|[ \t]+")


def read_text(path: str, dataset: str, name: str | None) -> str:
  """Reads a small text file as UTF-8 (a BOM is dropped); missing or undecodable is a DataError."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError:
    raise data_error(dataset, name, path, "missing file") from None
  except IsADirectoryError:
    raise data_error(dataset, name, path, "expected a file, found a directory") from None
  except OSError as e:
    raise data_error(dataset, name, path, f"unreadable file ({e})") from None
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise data_error(dataset, name, path, f"not UTF-8 text ({e})") from None


def content_lines(text: str, dataset: str, name: str | None, path: str) -> list[str]:
  """Splits into lines, dropping trailing blank lines; a blank line before the last one is an error.

  Returns the lines, line i (0-based) being line i + 1 of the file. CRLF and CR endings are
  accepted.
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


def parse_boxes(path: str, dataset: str, name: str | None, *, delimiter: str = ",") -> np.ndarray:
  """Parses a ground-truth file of one `x,y,w,h` row per frame.

  Args:
    path: the file.
    dataset, name: only for error messages.
    delimiter: "," for comma-separated rows (LaSOT, TNL2K, GOT-10k, TrackingNet), or "mixed"
      for OTB files, where commas, tabs and runs of spaces all separate values (also mixed within
      one row).

  Returns:
    [N, 4] float64 boxes exactly as written (NaN where the file says NaN).
  """
  if delimiter not in (",", "mixed"):
    raise ValueError(f"delimiter must be ',' or 'mixed', got {delimiter!r}")
  raw = content_lines(read_text(path, dataset, name), dataset, name, path)
  lines = raw if delimiter == "," else [",".join(_split(line, delimiter)) for line in raw]
  # np.loadtxt is the fast path and already strict (it rejects "1_0", "0x10", ragged rows); only
  # infinities slip through it. Any failure is diagnosed line by line for a precise message.
  try:
    gt = np.loadtxt(lines, delimiter=",", comments=None, dtype=np.float64, ndmin=2)
  except ValueError:
    gt = None
  if gt is None or gt.shape != (len(lines), 4) or np.isinf(gt).any():
    _raise_first_bad_row(raw, dataset, name, path, delimiter)
  return gt


def _split(line: str, delimiter: str) -> list[str]:
  return line.split(",") if delimiter == "," else _MIXED_SPLIT.split(line.strip())


def _raise_first_bad_row(lines: list[str], dataset: str, name: str | None, path: str,
                         delimiter: str) -> None:
  """Finds the first malformed box row and raises a DataError describing it."""
  sep = "comma-separated" if delimiter == "," else "comma/tab/space-separated"
  for i, line in enumerate(lines):
    values = _split(line, delimiter)
    if len(values) != 4:
      raise data_error(dataset, name, path,
                       f"expected 4 {sep} values x,y,w,h, found {len(values)}: {line!r}",
                       line=i + 1)
    for v in values:
      if NUM_RE.fullmatch(v) is None:
        raise data_error(dataset, name, path, f"unparsable value {v!r} in row {line!r}",
                         line=i + 1)
  # Not reached for any input seen so far (each row is checked with the same rules as loadtxt);
  # kept so a disagreement between the two still fails loudly.
  raise data_error(dataset, name, path, "malformed ground-truth file")


def parse_int_column(path: str, num_frames: int, allowed: range, dataset: str,
                     name: str | None, rows_from: str = "groundtruth.txt") -> np.ndarray:
  """Parses a file of one integer per line (GOT-10k `absence.label`, `cover.label`).

  Args:
    path: the file.
    num_frames: N, the number of ground-truth rows the values must match.
    allowed: the valid values.
    dataset, name: only for error messages.
    rows_from: the file N comes from, for the message.

  Returns:
    [N] int64.
  """
  lines = content_lines(read_text(path, dataset, name), dataset, name, path)
  values = np.empty(len(lines), np.int64)
  for i, line in enumerate(lines):
    v = line.strip()
    if not re.fullmatch(r"[+-]?\d+", v) or int(v) not in allowed:
      raise data_error(dataset, name, path,
                       f"value {v!r} is not an integer in [{allowed.start}, {allowed.stop - 1}]",
                       line=i + 1)
    values[i] = int(v)
  if len(values) != num_frames:
    raise data_error(dataset, name, path,
                     f"{len(values)} rows but {rows_from} has {num_frames} rows")
  return values


def parse_sentence(path: str, dataset: str, name: str | None) -> str:
  """Reads a sentence file; runs of whitespace (including line breaks) collapse to one space.

  An empty or whitespace-only file gives "": the split still loads (box-only tracking and scoring
  need no sentence); what needs one refuses it, naming the sequence (eval's text modes, the
  training sampler)."""
  return " ".join(read_text(path, dataset, name).split())


def list_dir(path: str, dataset: str, name: str | None, what: str = "directory") -> list[str]:
  """`os.listdir` with a DataError for a missing or non-directory path."""
  try:
    return os.listdir(path)
  except FileNotFoundError:
    raise data_error(dataset, name, path, f"missing {what}") from None
  except NotADirectoryError:
    raise data_error(dataset, name, path, f"{what} is not a directory") from None


def numbered_frames(listing: list[str], extensions: tuple[str, ...], dataset: str, name: str,
                    frame_dir: str) -> list[str]:
  """The image names of a directory sorted by frame number (`10.jpg` after `9.jpg`).

  Args:
    listing: the directory's entries.
    extensions: lower-case extensions that count as frames, e.g. (".jpg", ".png"); other entries
      are ignored.
    dataset, name, frame_dir: for error messages.

  Returns:
    The frame names in temporal order. Every image stem must be a decimal number, the numbers
    must be consecutive and all images must share one extension; otherwise the pairing of frames
    with ground-truth rows would be a guess, which is a DataError naming the offending file (or
    the first missing one).
  """
  images = [n for n in listing if os.path.splitext(n)[1].lower() in extensions]
  if not images:
    raise data_error(dataset, name, frame_dir, f"no {'/'.join(extensions)} images")
  exts = sorted({os.path.splitext(n)[1] for n in images})
  if len(exts) > 1:
    raise data_error(dataset, name, frame_dir,
                     f"frames of one sequence mix the extensions {exts}")
  numbers: dict[int, str] = {}
  for n in images:
    stem = os.path.splitext(n)[0]
    if not stem.isdigit():
      raise data_error(dataset, name, os.path.join(frame_dir, n),
                       "frame name is not a number: the frame order would be a guess")
    k = int(stem)
    if k in numbers:
      raise data_error(dataset, name, os.path.join(frame_dir, n),
                       f"frame number {k} also names {numbers[k]}")
    numbers[k] = n
  order = sorted(numbers)
  if order[-1] - order[0] + 1 != len(order):
    gap = next(k for k in range(order[0], order[-1]) if k not in numbers)
    width = len(os.path.splitext(numbers[order[0]])[0])
    guess = f"{gap:0{width}d}{exts[0]}"
    raise data_error(dataset, name, os.path.join(frame_dir, guess),
                     f"missing frame (frames {order[0]}..{order[-1]} are numbered, "
                     f"{len(order)} present)", frame=gap - order[0])
  return [numbers[k] for k in order]
