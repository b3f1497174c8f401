"""Evaluation behind `eval.py`: run a tracker over a split, write result files, score, plot.

Result files are written atomically per sequence and finished sequences are skipped, so a killed
evaluation resumes where it stopped. Scoring reads only result files and ground truth, so it
works on any tracker's raw results (`--analyze_only`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import time
from typing import Iterator

import numpy as np
import tqdm

from input_pipeline import sources
from input_pipeline.sources.base import Sequence
from lgtrack_jax.evaluation import attributes
from lgtrack_jax.evaluation import compare as compare_lib
from lgtrack_jax.evaluation import metrics, plots, protocols, results
from lgtrack_jax.tracking.tracker import Job


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


TEXT_ABLATIONS = ("none", "empty", "shuffled")


def ablate_sentences(seqs: list[Sequence], how: str, seed: int = 0) -> dict[str, str | None]:
  """The sentence each sequence is tracked with: sequence name -> sentence.

  'none': its own. 'empty': the empty string (the text encoder sees only [CLS] [SEP]).
  'shuffled': another sequence's sentence: a seeded derangement (a random cycle over the
  sequences that have one), so no sequence keeps its own unless only one has a sentence.
  """
  if how not in TEXT_ABLATIONS:
    raise ValueError(f"text_ablation={how!r}: expected one of {TEXT_ABLATIONS}")
  out = {s.name: s.sentence for s in seqs}
  if how == "empty":
    return {name: ("" if sentence is not None else None) for name, sentence in out.items()}
  if how == "shuffled":
    named = sorted(name for name, sentence in out.items() if sentence is not None)
    order = [named[i] for i in np.random.default_rng(seed).permutation(len(named))]
    originals = dict(out)
    for i, name in enumerate(order):
      out[name] = originals[order[(i + 1) % len(order)]]
  return out


def check_run_manifest(results_dir: str, manifest: dict) -> None:
  """Writes `run.json` (what produces the result files in `results_dir`), or, when resuming,
  checks that it describes the same run: mixing result files of different checkpoints, modes or
  text ablations in one directory would silently corrupt the scores."""
  path = os.path.join(results_dir, "run.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      old = json.load(f)
    diff = {k: (old.get(k), v) for k, v in manifest.items() if old.get(k) != v}
    if diff:
      raise ValueError(f"{results_dir} holds results of another run ({path}): differs in "
                       + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                       + "; use another --results_dir or delete it")
    return
  results.write_json_atomic(path, manifest)


def shard_sequences(seqs: list[Sequence], index: int, count: int) -> list[Sequence]:
  """This shard's share of the sequences: longest first dealt round-robin, so shards get about
  the same number of frames. Every shard computes the same deal (a pure function of the list)."""
  if not 0 <= index < count:
    raise ValueError(f"shard {index}/{count}: expected 0 <= index < count")
  order = sorted(seqs, key=lambda s: (-len(s), s.name))
  return order[index::count]


def track_split(tracker, seqs: list[Sequence], results_dir: str, mode: str, *,
                batch_sequences: int = 1, text_ablation: str = "none",
                shard: tuple[int, int] = (0, 1)) -> dict[str, float]:
  """Runs `tracker` on every unfinished sequence of this shard, `batch_sequences` at a time,
  writing each sequence's result file as it finishes.

  Sentences are ablated over the whole split (so shards agree on who gets whose sentence).
  Returns {'frames', 'seconds', 'fps', 'skipped', 'batch_sequences', 'shard'}.
  """
  os.makedirs(results_dir, exist_ok=True)
  sentences = ablate_sentences(seqs, text_ablation)
  mine = shard_sequences(seqs, *shard)
  todo = [s for s in mine if not results.is_done(results_dir, s.name)]
  jobs = []
  for seq in todo:
    init_box = None if mode == "nl" else seq.boxes[0]
    if init_box is not None and (seq.absent[0] or not np.all(np.isfinite(init_box))):
      raise sources.DataError(f"no initial box: frame 0 of {seq.name} is absent or NaN "
                              f"[dataset={seq.dataset}, sequence={seq.name}, frame=0]")
    jobs.append(Job(seq, Frames(seq), init_box, sentences[seq.name]))
  frames_done = 0
  bar = tqdm.tqdm(total=sum(len(s) for s in todo), unit="frame", dynamic_ncols=True,
                  desc=f"tracking {len(todo)} sequences")
  t0 = time.perf_counter()
  for seq, boxes, times in tracker.track_many(jobs, mode, batch_sequences=batch_sequences):
    results.write_result(results_dir, seq.name, seq.to_file_coords(boxes), times)
    frames_done += len(seq)
    bar.update(len(seq))
    bar.set_postfix(fps=f"{frames_done / max(time.perf_counter() - t0, 1e-9):.1f}")
  bar.close()
  seconds = time.perf_counter() - t0
  return {"frames": frames_done, "seconds": seconds,
          "fps": frames_done / seconds if seconds else 0.0, "skipped": len(mine) - len(todo),
          "batch_sequences": batch_sequences, "shard": f"{shard[0]}/{shard[1]}"}


def score_results(seqs: list[Sequence], results_dir: str, *, validity: str = "all4",
                  protocol: str = "official", attributes_dir: str | None = None) -> dict:
  """OPE metrics of the result files in `results_dir` against the sequences' ground truth;
  with `attributes_dir`, also 'per_attribute' scores (see evaluation/attributes.py)."""
  curves, per_sequence = [], {}
  for seq in seqs:
    path, pred = results.read_sequence_result(results_dir, seq.name)
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
  if attributes_dir:
    names, flags = attributes.read_attributes(attributes_dir, [s.name for s in seqs])
    summary["per_attribute"] = attributes.per_attribute(curves, names, flags)
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


def parse_compare(spec: str | None) -> dict[str, str]:
  """'NAME=DIR,NAME=DIR' -> {NAME: DIR}; a malformed entry or a repeated name is an error."""
  out: dict[str, str] = {}
  for item in filter(None, (spec or "").split(",")):
    name, sep, path = item.partition("=")
    if not sep or not name.strip() or not path.strip():
      raise ValueError(f"--compare entry {item!r}: expected NAME=DIR")
    if name.strip() in out:
      raise ValueError(f"--compare names {name.strip()!r} twice")
    out[name.strip()] = path.strip()
  return out


def run(*, config, checkpoint: str | None, dataset: str | None, data_root: str | None,
        split: str, results_dir: str, mode: str | None, tracker: str, analyze_only: bool,
        sequences_file: str | None, protocol: str, validity: str, batch_sequences: int = 1,
        text_ablation: str = "none", compare: str | None = None,
        visualize: str | None = None, shard: tuple[int, int] | None = None,
        attributes_dir: str | None = None, weights: str | None = None) -> dict | None:
  """Tracks (unless analyze_only), scores and reports. Returns the metrics.json record.

  `compare`: 'NAME=DIR,...' other trackers' raw result directories, scored on the same sequences
  with the same protocol; the table goes to `compare.txt` and the joint plots to `compare/`.
  `visualize`: 'SEQ,SEQ' sequences drawn as GIF + contact sheet under `visualize/`.
  `attributes_dir`: per-sequence attribute flags (evaluation/attributes.py): per-attribute
  scores in metrics.json and `attributes.png` (with `--compare`, for every tracker).
  `weights`: a converted weights directory, instead of the train workdir `checkpoint`.
  `shard`: (index, count) of this process's share of the sequences. Default: one shard per JAX
  process (multi-host: after tracking, all processes meet and process 0 scores; `results_dir`
  must be a shared filesystem). Given explicitly (independent processes, e.g. one per GPU), a
  shard only tracks; score with `--analyze_only` once every shard is done. Returns None when this
  process does not score.
  """
  if config is None and (dataset is None or data_root is None or mode is None):
    raise ValueError("without --config, give --dataset, --data_root and --mode")
  dataset = dataset or config.eval.dataset
  data_root = data_root or config.data.root
  mode = mode or config.eval.mode
  others = parse_compare(compare)  # fail on a bad spec before any tracking
  kind = protocols.protocol_of(dataset, split)
  if others and kind != "ope":
    raise ValueError(f"--compare tables are OPE scores; {dataset} {split} is scored by {kind}")
  seqs = sources.load(dataset, data_root, split, sequences=_read_sequence_list(sequences_file))
  name = tracker if text_ablation == "none" else f"{tracker} (text {text_ablation})"
  extra = {"tracker": name, "dataset": dataset, "split": split, "mode": mode,
           "text_ablation": text_ablation, "protocol": protocol, "validity": validity,
           "results_dir": results_dir, "data_root": data_root, "checkpoint": checkpoint,
           "weights": weights,
           "first_frame": "grounded by the model (mode 1)" if mode == "nl" else "ground truth"}
  if not analyze_only:
    os.makedirs(results_dir, exist_ok=True)
    check_run_manifest(results_dir, {
        "tracker": tracker, "dataset": dataset, "split": split, "mode": mode,
        "text_ablation": text_ablation,
        "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
        **({"weights": os.path.abspath(weights)} if weights else {})})
    if tracker == "static":
      from lgtrack_jax.tracking.tracker import StaticTracker  # pylint: disable=import-outside-toplevel
      runner = StaticTracker()
    else:
      if config is None or bool(checkpoint) == bool(weights):
        raise ValueError("--tracker lgtrack needs --config and one of --checkpoint (a train "
                         "workdir) or --weights (a converted weights directory)")
      from lgtrack_jax.tracking import online  # pylint: disable=import-outside-toplevel
      runner, step = online.build_lgtracker(config, checkpoint, weights)
      extra["checkpoint_step"] = step
    independent = shard is not None
    if shard is None:
      import jax  # pylint: disable=import-outside-toplevel
      shard = (jax.process_index(), jax.process_count())
    extra["speed"] = track_split(runner, seqs, results_dir, mode, batch_sequences=batch_sequences,
                                 text_ablation=text_ablation, shard=shard)
    if shard[1] > 1:
      if independent:
        print(f"shard {shard[0]}/{shard[1]} done: score with --analyze_only once all shards are")
        return None
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      multihost_utils.sync_global_devices(f"eval {results_dir}")
      if shard[0] != 0:
        return None
  if config is not None:
    extra["config"] = config.to_dict()
  title = f"{dataset} {split} ({mode})"
  if visualize:
    extra["visualizations"] = _visualize(seqs, visualize, text_ablation, results_dir)
  if kind == "submission":  # ground truth withheld: the benchmark's server scores
    extra["submission"] = protocols.write_submission(dataset, seqs, results_dir)
    extra["server"] = protocols.SERVERS[dataset]
    results.write_json_atomic(os.path.join(results_dir, "metrics.json"), _jsonable(extra))
    return extra
  if kind == "got10k":
    summary = protocols.score_got10k(seqs, results_dir)
    extra["protocol"] = "got10k"
    extra["plots"] = plots.plot_got10k(results_dir, {name: summary}, title)
    record = {**summary, **extra}
    results.write_json_atomic(os.path.join(results_dir, "metrics.json"), _jsonable(record))
    return record
  score = functools.partial(score_results, seqs, validity=validity, protocol=protocol,
                            attributes_dir=attributes_dir)
  summary = score(results_dir)
  joint = {name: summary}
  if others:
    if name in others:
      raise ValueError(f"--compare name {name!r} is this run's own name")
    dirs = {name: results_dir, **others}
    joint.update({o: score(d) for o, d in others.items()})
    extra["compare"] = {n: {**{k: joint[n][k] for k in ("auc", "precision", "norm_precision")},
                            "results_dir": dirs[n]} for n in joint}
    with open(os.path.join(results_dir, "compare.txt"), "w", encoding="utf-8") as f:
      f.write(compare_lib.table(extra["compare"]) + "\n")
    extra["compare_plots"] = plots.plot_curves(os.path.join(results_dir, "compare"), joint, title)
  if attributes_dir:
    extra["attribute_plot"] = plots.plot_attributes(
        results_dir, {n: s["per_attribute"] for n, s in joint.items()}, title)
  return write_report(results_dir, name, summary, extra, title)


def _visualize(seqs: list[Sequence], which: str, text_ablation: str, results_dir: str) -> list:
  """GIF + contact sheet of the sequences named in 'SEQ,SEQ' from their result files."""
  from lgtrack_jax.evaluation import visualize as vis  # pylint: disable=import-outside-toplevel
  by_name = {s.name: s for s in seqs}
  wanted = [v.strip() for v in which.split(",") if v.strip()]
  missing = [v for v in wanted if v not in by_name]
  if missing:
    raise ValueError(f"--visualize: {missing} not among the evaluated sequences")
  sentences = ablate_sentences(seqs, text_ablation)
  return [vis.render_sequence(by_name[v], results.read_sequence_result(results_dir, v)[1],
                              os.path.join(results_dir, "visualize"), sentences[v])
          for v in wanted]
