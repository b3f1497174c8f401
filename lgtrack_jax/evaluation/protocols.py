"""How each benchmark's result files are scored: OPE (LaSOT, LaSOT_ext, TNL2K, OTB99-Lang,
synthetic), GOT-10k's own protocol (val), and the archives of the splits only a server scores
(GOT-10k test, TrackingNet test). docs/design.md section 9.

Which benchmark uses which is the table `runner.BENCHMARKS`; every scoring function here has the
signature (sequences, results_dir, options) -> summary.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import zipfile

import numpy as np
from PIL import Image

from input_pipeline.sources.base import Sequence
from lgtrack_jax.evaluation import attributes, got10k_metrics, metrics, results


@dataclasses.dataclass(frozen=True)
class ScoreOptions:
  """The user's choices of how to score (OPE only; GOT-10k has a single rule).

  Attributes:
    validity: which ground-truth rows are valid, 'all4' (official) or 'wh' (metrics.valid_gt).
    protocol: the invalid-ground-truth rule for precision, 'official' or 'pytracking'.
    attributes_dir: per-sequence attribute flags (evaluation/attributes.py), or None.
  """

  validity: str = "all4"
  protocol: str = "official"
  attributes_dir: str | None = None


def score_ope(seqs: list[Sequence], results_dir: str, options: ScoreOptions = ScoreOptions()
              ) -> dict:
  """OPE metrics of the result files in `results_dir` against the sequences' ground truth:
  AUC, P@20, NP@0.2 and their curves (metrics.summarize), 'per_sequence' scores,
  'num_sequences'; with `options.attributes_dir`, also 'per_attribute' scores."""
  curves, per_sequence = [], {}
  for seq in seqs:
    path, pred = results.read_sequence_result(results_dir, seq.name)
    try:
      c = metrics.sequence_curves(pred, seq.gt, seq.absent, validity=options.validity,
                                  protocol=options.protocol)
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None
    curves.append(c)
    s = metrics.summarize([c])
    per_sequence[seq.name] = {k: s[k] for k in ("auc", "precision", "norm_precision")}
  summary = metrics.summarize(curves)
  summary["per_sequence"] = per_sequence
  summary["num_sequences"] = len(seqs)
  if options.attributes_dir:
    names, flags = attributes.read_attributes(options.attributes_dir, [s.name for s in seqs])
    summary["per_attribute"] = attributes.per_attribute(curves, names, flags)
  return summary


SUBMISSION_LAYOUTS = ("got10k", "flat")


def write_submission(dataset: str, seqs: list[Sequence], results_dir: str,
                     layout: str = "flat") -> str:
  """Packs the result files as the server wants them into `<dataset>_submission.zip`; returns
  the archive's path.

  layout 'got10k': `<seq>/<seq>_001.txt` (boxes) and `<seq>/<seq>_time.txt` per sequence.
  layout 'flat' (TrackingNet): `<seq>.txt` per sequence at the archive's root.
  """
  if layout not in SUBMISSION_LAYOUTS:
    raise ValueError(f"submission layout {layout!r}: expected one of {SUBMISSION_LAYOUTS}")
  path = os.path.join(results_dir, f"{dataset}_submission.zip")
  tmp = path + ".tmp"
  with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for seq in seqs:
      boxes, pred = results.read_sequence_result(results_dir, seq.name)
      n = len(pred)
      if n != len(seq):
        raise ValueError(f"{boxes}: {n} rows for {len(seq)} frames")
      if layout == "got10k":
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
  if not seq.has_frames:
    raise ValueError(f"{seq.dataset}/{seq.name}: no resolution in meta_info.ini and no frames on "
                     "disk: the GOT-10k protocol needs the frame size")
  with Image.open(seq.frames[0]) as im:
    return im.size


def score_got10k(seqs: list[Sequence], results_dir: str,
                 options: ScoreOptions = ScoreOptions()) -> dict:
  """GOT-10k scores (AO, SR0.5, SR0.75 in percent, frames pooled) of the result files, with
  per-sequence AO / SR0.5 and the 101-point success curve. `options` do not apply: the protocol
  has one rule."""
  del options
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
