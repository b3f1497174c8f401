"""Benchmarks that are not scored by OPE: GOT-10k (its own protocol on val; the test split is scored
by its server) and TrackingNet (scored by its server only). DESIGN section 9.

`eval.py` picks the protocol from the dataset: `protocol_of(dataset, split)`.
"""

from __future__ import annotations

import ast
import os
import zipfile

import numpy as np
from PIL import Image

from input_pipeline.sources.base import Sequence
from lgtrack_jax.evaluation import got10k_metrics, results

# Splits whose ground truth is withheld (only the first box is published): eval.py writes the
# server's submission archive instead of scores.
SERVER_SPLITS = {"got10k": ("test",), "trackingnet": ("test", "TEST")}
SERVERS = {"got10k": "http://got-10k.aitestunion.com/submit_instructions",
           "trackingnet": "https://eval.ai/web/challenges/challenge-page/1805"}


def protocol_of(dataset: str, split: str) -> str:
  """'submission' | 'got10k' | 'ope' (LaSOT, LaSOT_ext, TNL2K, OTB99-Lang, synthetic)."""
  if split in SERVER_SPLITS.get(dataset, ()):
    return "submission"
  if dataset == "got10k":
    return "got10k"
  if dataset == "trackingnet":
    raise ValueError("TrackingNet is scored by its evaluation server only: run --split test to "
                     "write the submission archive")
  return "ope"


def write_submission(dataset: str, seqs: list[Sequence], results_dir: str) -> str:
  """Packs the result files as the server wants them; returns the archive's path.

  GOT-10k: `<seq>/<seq>_001.txt` (boxes) and `<seq>/<seq>_time.txt` per sequence.
  TrackingNet: `<seq>.txt` per sequence at the archive's root.
  """
  path = os.path.join(results_dir, f"{dataset}_submission.zip")
  tmp = path + ".tmp"
  with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for seq in seqs:
      boxes, pred = results.read_sequence_result(results_dir, seq.name)
      n = len(pred)
      if n != len(seq):
        raise ValueError(f"{boxes}: {n} rows for {len(seq)} frames")
      if dataset == "got10k":
        z.write(boxes, f"{seq.name}/{seq.name}_001.txt")
        times = results.time_path(results_dir, seq.name)
        if os.path.exists(times):
          z.write(times, f"{seq.name}/{seq.name}_time.txt")
      else:
        z.write(boxes, f"{seq.name}.txt")
  os.replace(tmp, path)
  return path


def image_size(seq: Sequence) -> tuple[int, int]:
  """(width, height) of the sequence's frames: `meta_info.ini` resolution, else frame 0."""
  resolution = (seq.meta or {}).get("resolution")
  if resolution:
    try:
      w, h = ast.literal_eval(resolution)
      return int(w), int(h)
    except (ValueError, SyntaxError, TypeError):
      raise ValueError(f"{seq.dataset}/{seq.name}: unreadable resolution {resolution!r} in "
                       "meta_info.ini") from None
  with Image.open(seq.frames[0]) as im:
    return im.size


def score_got10k(seqs: list[Sequence], results_dir: str) -> dict:
  """GOT-10k scores (AO, SR0.5, SR0.75 in percent, frames pooled) of the result files, with
  per-sequence AO / SR0.5 and the 101-point success curve."""
  ious, per_sequence = [], {}
  for seq in seqs:
    if seq.cover is None:
      raise ValueError(f"{seq.dataset}/{seq.name} has no cover.label: the GOT-10k protocol needs "
                       "it (the test split is scored by the server)")
    path, pred = results.read_sequence_result(results_dir, seq.name)
    pred = pred[:len(seq)]
    try:
      seq_ious = got10k_metrics.sequence_ious(pred, seq.gt, seq.cover, image_size(seq))
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None
    ious.append(seq_ious)
    per_sequence[seq.name] = {"ao": 100.0 * float(np.mean(seq_ious)) if seq_ious.size else None,
                              "sr50": 100.0 * float(np.mean(seq_ious > 0.5))
                              if seq_ious.size else None}
  summary = got10k_metrics.summarize(ious)
  summary["per_sequence"] = per_sequence
  summary["num_sequences"] = len(seqs)
  return summary
