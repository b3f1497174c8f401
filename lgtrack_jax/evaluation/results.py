"""Tracking result files in the layout other toolkits read (docs/design.md section 7).

`<results_dir>/<seq>.txt`: one `x,y,w,h` row per frame, comma-separated floats.
`<results_dir>/<seq>_time.txt`: one per-frame time in seconds per line (optional).
Every file is written atomically (temporary file in the same directory, then `os.replace`) and the
box file last, so its presence means the sequence is complete: an interrupted run resumes by
skipping the sequences for which `is_done` holds.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from lgtrack_jax import files

BOX_FORMAT = "%.4f"  # sub-pixel boxes survive the round trip; no integer truncation
TIME_FORMAT = "%.6f"
_SPLIT = re.compile(r"[,\s]+")


def box_path(results_dir: str | os.PathLike, seq_name: str) -> str:
  """Path of a sequence's box file."""
  return os.path.join(os.fspath(results_dir), f"{seq_name}.txt")


def time_path(results_dir: str | os.PathLike, seq_name: str) -> str:
  """Path of a sequence's time file."""
  return os.path.join(os.fspath(results_dir), f"{seq_name}_time.txt")


def _format_rows(a: np.ndarray, fmt: str) -> str:
  """[N, K] -> one comma-separated line per row, each ending in a newline."""
  return "".join(",".join(fmt % v for v in row) + "\n" for row in a)


def write_result(
    results_dir: str | os.PathLike,
    seq_name: str,
    boxes: np.ndarray,
    times: np.ndarray | None = None,
) -> str:
  """Writes a sequence's boxes (and per-frame times) atomically, the box file last.

  Args:
    results_dir: output directory, created if missing.
    seq_name: sequence name, the file stem.
    boxes: [N, 4] float x,y,w,h per frame (frame 0 included: the initialisation box).
    times: [N] float seconds per frame, or None to write no time file.
  Returns:
    The box file's path.
  """
  boxes = np.asarray(boxes, dtype=np.float64)
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"{seq_name}: boxes must be [N, 4], got shape {boxes.shape}")
  if times is not None:
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.shape[0] != boxes.shape[0]:
      raise ValueError(f"{seq_name}: {times.shape[0]} times for {boxes.shape[0]} boxes")
    files.write_text_atomic(time_path(results_dir, seq_name), _format_rows(times[:, None], TIME_FORMAT))
  path = box_path(results_dir, seq_name)
  files.write_text_atomic(path, _format_rows(boxes, BOX_FORMAT))
  return path


def _read_rows(path: str | os.PathLike, width: int) -> np.ndarray:
  """Parses a text file of `width` numbers per line into [N, width] float64."""
  path = os.fspath(path)
  with open(path, encoding="utf-8") as f:
    lines = f.read().rstrip().splitlines()
  rows = np.empty((len(lines), width), dtype=np.float64)
  for i, line in enumerate(lines):
    fields = [s for s in _SPLIT.split(line.strip()) if s]
    if len(fields) != width:
      raise ValueError(f"{path}:{i + 1}: expected {width} numbers, got {line!r}")
    try:
      rows[i] = [float(s) for s in fields]
    except ValueError:
      raise ValueError(f"{path}:{i + 1}: not a number in {line!r}") from None
  return rows


def read_result(path: str | os.PathLike) -> np.ndarray:
  """Reads a box file written by any tracker: ours, pytracking (tabs) or MATLAB (commas).

  Fields may be separated by commas, tabs or spaces (mixed too), written as integers or floats
  ("nan" included: `metrics.prepare_predictions` handles it); a trailing newline is optional.

  Returns:
    [N, 4] float64 x,y,w,h.
  Raises:
    ValueError: a line without exactly four numbers, naming the file and the 1-based line.
  """
  return _read_rows(path, 4)


def read_sequence_result(results_dir: str | os.PathLike, seq_name: str) -> tuple[str, np.ndarray]:
  """(path, [N, 4] boxes) of a sequence's box file in `results_dir`; FileNotFoundError naming
  the sequence and the path when it is missing."""
  path = box_path(results_dir, seq_name)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no result file for sequence {seq_name}: {path}")
  return path, read_result(path)


def read_times(path: str | os.PathLike) -> np.ndarray:
  """Reads a `<seq>_time.txt` file. Returns [N] float64 seconds per frame."""
  return _read_rows(path, 1)[:, 0]


def is_done(results_dir: str | os.PathLike, seq_name: str) -> bool:
  """Whether a sequence's results are complete: its box file exists (it is written last)."""
  return os.path.isfile(box_path(results_dir, seq_name))


def jsonable(obj: Any) -> Any:
  """`obj` with numpy arrays and scalars (what `metrics.summarize` returns) as lists and numbers,
  through dicts, lists and tuples: the one JSON encoding of results (metrics.json, run.json)."""
  if isinstance(obj, dict):
    return {k: jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, np.generic):
    return obj.item()
  return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
  """Writes `obj` as indented JSON, atomically. numpy arrays and scalars become lists/numbers."""
  files.write_text_atomic(path, json.dumps(jsonable(obj), indent=2) + "\n")
