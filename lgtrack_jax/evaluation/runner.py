"""Evaluation behind `eval.py`: run a tracker over a split, write result files, score, plot.

Result files are written atomically per sequence and finished sequences are skipped, so a killed
evaluation resumes where it stopped. Scoring reads only result files and ground truth, so it
works on any tracker's raw results (`--analyze_only`).
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from typing import Iterator

import numpy as np
import tqdm

from input_pipeline import sources
from input_pipeline.sources.base import Sequence
from lgtrack_jax.evaluation import metrics, plots, results


class Frames:
  """A sequence's frames, decoded lazily on a background thread, `lookahead` frames ahead."""

  def __init__(self, seq: Sequence, lookahead: int = 4):
    self.seq = seq
    self.lookahead = lookahead

  def __len__(self) -> int:
    return len(self.seq)

  def __iter__(self) -> Iterator[np.ndarray]:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      pending = [pool.submit(self.seq.load_frame, i)
                 for i in range(min(self.lookahead, len(self.seq)))]
      for i in range(len(self.seq)):
        frame = pending.pop(0).result()
        if i + self.lookahead < len(self.seq):
          pending.append(pool.submit(self.seq.load_frame, i + self.lookahead))
        yield frame


def track_split(tracker, seqs: list[Sequence], results_dir: str, mode: str) -> dict[str, float]:
  """Runs `tracker` on every unfinished sequence; returns {'frames', 'seconds', 'fps', 'skipped'}."""
  os.makedirs(results_dir, exist_ok=True)
  todo = [s for s in seqs if not results.is_done(results_dir, s.name)]
  frames_done, seconds = 0, 0.0
  bar = tqdm.tqdm(todo, unit="seq", dynamic_ncols=True, desc="tracking")
  for seq in bar:
    init_box = None if mode == "nl" else seq.boxes[0]
    if init_box is not None and (seq.absent[0] or not np.all(np.isfinite(init_box))):
      raise sources.DataError(f"no initial box: frame 0 of {seq.name} is absent or NaN "
                              f"[dataset={seq.dataset}, sequence={seq.name}, frame=0]")
    t0 = time.perf_counter()
    boxes, times = tracker.track(Frames(seq), init_box, seq.sentence, mode)
    seconds += time.perf_counter() - t0
    frames_done += len(seq)
    results.write_result(results_dir, seq.name, seq.to_file_coords(boxes), times)
    bar.set_postfix(fps=f"{frames_done / max(seconds, 1e-9):.1f}")
  return {"frames": frames_done, "seconds": seconds,
          "fps": frames_done / seconds if seconds else 0.0, "skipped": len(seqs) - len(todo)}


def score_results(seqs: list[Sequence], results_dir: str, *, validity: str = "all4",
                  protocol: str = "official") -> dict:
  """OPE metrics of the result files in `results_dir` against the sequences' ground truth."""
  curves, per_sequence = [], {}
  for seq in seqs:
    path = os.path.join(results_dir, f"{seq.name}.txt")
    if not os.path.exists(path):
      raise FileNotFoundError(f"no result file for sequence {seq.name}: {path}")
    pred = results.read_result(path)
    try:
      c = metrics.sequence_curves(pred, seq.gt, seq.absent, validity=validity, protocol=protocol)
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None
    curves.append(c)
    s = metrics.summarize([c])
    per_sequence[seq.name] = {k: s[k] for k in ("auc", "precision", "norm_precision")}
  summary = metrics.summarize(curves)
  summary["per_sequence"] = per_sequence
  summary["num_sequences"] = len(seqs)
  return summary


def write_report(out_dir: str, name: str, summary: dict, extra: dict, title: str) -> dict:
  """metrics.json (scores, mean curves, per-sequence table, and the run's provenance in `extra`)
  and the success/precision PNGs."""
  record = {**summary, **extra}
  record["plots"] = plots.plot_curves(out_dir, {name: summary}, title)
  results.write_json_atomic(os.path.join(out_dir, "metrics.json"), _jsonable(record))
  return record


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, np.generic):
    return x.item()
  return x


def _read_sequence_list(path: str | None) -> list[str] | None:
  if not path:
    return None
  with open(path, encoding="utf-8") as f:
    names = [line.strip() for line in f if line.strip()]
  if not names:
    raise ValueError(f"--sequences file {path} lists no sequences")
  return names


def build_lgtracker(config, checkpoint: str):
  """LGTracker with the latest params of a train workdir, on the first local device."""
  from lgtrack_jax.models import lgtrack  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.tracking.tracker import LGTracker  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.training import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  params, step = ckpt_lib.load_params(checkpoint, config)
  model = lgtrack.build_model(config)
  tokenizer = Tokenizer(config.model.text.tokenizer or config.model.text.checkpoint,
                        config.model.text.max_len)
  return LGTracker(model, params, config, tokenizer), step


def run(*, config, checkpoint: str | None, dataset: str | None, data_root: str | None,
        split: str, results_dir: str, mode: str | None, tracker: str, analyze_only: bool,
        sequences_file: str | None, protocol: str, validity: str) -> dict:
  """Tracks (unless analyze_only), scores and reports. Returns the metrics.json record."""
  if config is None and (dataset is None or data_root is None or mode is None):
    raise ValueError("without --config, give --dataset, --data_root and --mode")
  dataset = dataset or config.eval.dataset
  data_root = data_root or config.data.root
  mode = mode or config.eval.mode
  seqs = sources.load(dataset, data_root, split, sequences=_read_sequence_list(sequences_file))
  extra = {"tracker": tracker, "dataset": dataset, "split": split, "mode": mode,
           "protocol": protocol, "validity": validity, "results_dir": results_dir,
           "data_root": data_root, "checkpoint": checkpoint}
  if not analyze_only:
    if tracker == "static":
      from lgtrack_jax.tracking.tracker import StaticTracker  # pylint: disable=import-outside-toplevel
      runner = StaticTracker()
    else:
      if config is None or not checkpoint:
        raise ValueError("--tracker lgtrack needs --config and --checkpoint (a train workdir)")
      runner, step = build_lgtracker(config, checkpoint)
      extra["checkpoint_step"] = step
    extra["speed"] = track_split(runner, seqs, results_dir, mode)
  if config is not None:
    extra["config"] = config.to_dict()
  summary = score_results(seqs, results_dir, validity=validity, protocol=protocol)
  title = f"{dataset} {split} ({mode})"
  return write_report(results_dir, tracker, summary, extra, title)
