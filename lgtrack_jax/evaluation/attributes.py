"""Per-attribute breakdown of OPE scores (LaSOT-style attribute files).

An attribute directory holds `<seq>.txt` per sequence: one line of 0/1 flags separated by commas
or whitespace, one flag per attribute. Attribute names come from `names.txt` in the same directory
(one per line) when present; 14 columns without it are LaSOT's attributes in its toolkit's order
(`LaSOT_Evaluation_Toolkit/annos/att/`). A sequence counts towards every attribute it has; the
attribute's score is the OPE summary over those sequences.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

import numpy as np

from lgtrack_jax.evaluation import metrics

LASOT_ATTRIBUTES = (
    "Illumination Variation", "Partial Occlusion", "Deformation", "Motion Blur", "Camera Motion",
    "Rotation", "Background Clutter", "Viewpoint Change", "Scale Variation", "Full Occlusion",
    "Fast Motion", "Out-of-View", "Low Resolution", "Aspect Ratio Change")


def read_attributes(directory: str, seq_names: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
  """(attribute names [A], flags [S, A] bool) for the sequences, in their order.

  Raises ValueError naming the file (and line) for a missing file, a non-0/1 value, a wrong
  number of columns or a names.txt of another length.
  """
  names_path = os.path.join(directory, "names.txt")
  names = None
  if os.path.exists(names_path):
    with open(names_path, encoding="utf-8") as f:
      names = tuple(line.strip() for line in f if line.strip())
  missing = [n for n in seq_names if not os.path.exists(os.path.join(directory, f"{n}.txt"))]
  if missing:
    raise ValueError(f"no attribute file for {len(missing)} sequence(s) in {directory}: "
                     f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
  rows = []
  for n in seq_names:
    path = os.path.join(directory, f"{n}.txt")
    with open(path, encoding="utf-8") as f:
      lines = [line for line in f.read().splitlines() if line.strip()]
    if len(lines) != 1:
      raise ValueError(f"{path}: expected one line of 0/1 flags, found {len(lines)} lines")
    fields = [v for v in re.split(r"[,\s]+", lines[0].strip()) if v]
    if any(v not in ("0", "1") for v in fields):
      raise ValueError(f"{path}: line 1: flags must be 0 or 1, got {lines[0].strip()!r}")
    rows.append([v == "1" for v in fields])
  widths = {len(r) for r in rows}
  if len(widths) != 1:
    raise ValueError(f"{directory}: attribute files have different numbers of flags: {widths}")
  (width,) = widths
  if names is None:
    if width != len(LASOT_ATTRIBUTES):
      raise ValueError(f"{directory}: {width} flags per sequence and no names.txt to name them")
    names = LASOT_ATTRIBUTES
  if len(names) != width:
    raise ValueError(f"{names_path}: {len(names)} names for {width} flags per sequence")
  return names, np.asarray(rows, bool)


def per_attribute(curves: Sequence[Mapping], names: Sequence[str], flags: np.ndarray) -> dict:
  """{attribute: {auc, precision, norm_precision, num_sequences}} over the sequences having it.

  curves: `metrics.sequence_curves` outputs, in the order of the rows of flags [S, A].
  Attributes no sequence has are left out.
  """
  out = {}
  for a, name in enumerate(names):
    idx = np.flatnonzero(flags[:, a])
    if idx.size:
      s = metrics.summarize([curves[i] for i in idx])
      out[name] = {k: s[k] for k in ("auc", "precision", "norm_precision")}
      out[name]["num_sequences"] = int(idx.size)
  return out
