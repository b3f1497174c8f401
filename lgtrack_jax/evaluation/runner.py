"""Evaluation behind `eval.py`, in three steps, each callable on its own:

  track(tracker, seqs, results_dir, mode)    result files `<seq>.txt`, resumable
  score(dataset, split, seqs, results_dir)    metrics from result files and ground truth only
  report(results_dir, record, scores, seqs)   metrics.json (its one writer), tables, plots

`BENCHMARKS` is the one table of what differs between benchmarks: how a split loads and how it is
scored (OPE, GOT-10k's protocol, or a server's submission archive). `run` checks the arguments,
loads the split and chains the steps; while it tracks it holds the directory's lock, and `run.json`
(what produced the result files: tracker, checkpoint step, config hash, ...) keeps a resumed
evaluation from mixing its results with another run's.

Result files are written atomically per sequence and finished sequences are skipped, so a killed
evaluation resumes where it stopped. Scoring reads only result files and ground truth, so it
works on any tracker's raw results (`--analyze_only`), without the frames on disk.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import socket
import time
from typing import Any, Callable, Iterator

import numpy as np
import tqdm
from absl import logging

from input_pipeline import sources
from input_pipeline.sources.base import Sequence, data_error
from lgtrack_jax import config_io
from lgtrack_jax.modes import Mode
from lgtrack_jax.evaluation import compare as compare_lib
from lgtrack_jax.evaluation import plots, protocols, results
from lgtrack_jax.evaluation.protocols import ScoreOptions
from lgtrack_jax.tracking.tracker import Job

# --- the benchmarks ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scoring:
  """How a benchmark scores result files against its ground truth, and draws the scores.

  Attributes:
    score: (sequences, results_dir, ScoreOptions) -> summary: the `headline` scores, the curves,
      'per_sequence' and 'num_sequences' (protocols.score_ope / score_got10k).
    plot: (out_dir, {tracker: summary}, title) -> the PNG paths written.
    headline: the summary's main scores, in the order eval.py prints them.
    protocol: what metrics.json records as the protocol; None records the --protocol rule.
    compares: whether --compare and --attributes apply (OPE only).
  """

  score: Callable[[list[Sequence], str, ScoreOptions], dict]
  plot: Callable[[str, dict, str], list[str]]
  headline: tuple[str, ...]
  protocol: str | None = None
  compares: bool = False


OPE = Scoring(protocols.score_ope, plots.plot_curves, ("auc", "precision", "norm_precision"),
              compares=True)
GOT10K = Scoring(protocols.score_got10k, plots.plot_got10k, ("ao", "sr50", "sr75"),
                 protocol="got10k")


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One benchmark: how its splits load and how each is scored.

  Attributes:
    scoring: how the splits with published ground truth are scored; None: none has it.
    server: where the splits in `server_splits` (ground truth withheld) are scored; eval.py
      writes their result files as an archive for it (`submission`: protocols.write_submission
      layout).
    load: (dataset, root, split, sequences, frames_required=...) -> list of Sequence.
  """

  scoring: Scoring | None
  server: str | None = None
  server_splits: tuple[str, ...] = ()
  submission: str = "flat"
  load: Callable[..., list[Sequence]] = sources.load

  def scoring_of(self, dataset: str, split: str) -> Scoring | None:
    """How `split` is scored; None when only the server scores it."""
    if split in self.server_splits:
      return None
    if self.scoring is None:
      raise ValueError(f"{dataset} is scored by its evaluation server only: run --split "
                       f"{self.server_splits[0]} to write the submission archive")
    return self.scoring


BENCHMARKS: dict[str, Benchmark] = {
    "lasot": Benchmark(OPE),
    "lasot_ext": Benchmark(OPE),
    "tnl2k": Benchmark(OPE),
    "otb99_lang": Benchmark(OPE),
    "synthetic": Benchmark(OPE),
    "got10k": Benchmark(GOT10K, server="http://got-10k.aitestunion.com/submit_instructions",
                        server_splits=("test",), submission="got10k"),
    "trackingnet": Benchmark(None, server="https://eval.ai/web/challenges/challenge-page/1805",
                             server_splits=("test", "TEST")),
}


def benchmark(dataset: str) -> Benchmark:
  """The table's entry for `dataset`; a ValueError naming the known ones."""
  if dataset not in BENCHMARKS:
    raise ValueError(f"unknown benchmark {dataset!r}; known: {', '.join(BENCHMARKS)}")
  return BENCHMARKS[dataset]


# --- step 1: track ------------------------------------------------------------------------------


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


def check_inputs(seqs: list[Sequence], mode: str) -> None:
  """What `mode` needs of each sequence, checked before any model loads: a first box with w, h
  > 0 (modes 'bbox', 'nl_bbox'), a non-empty sentence ('nl', 'nl_bbox'). A DataError names the
  dataset, the sequence and frame 0."""
  for seq in seqs:
    if Mode(mode).needs_box:
      box = seq.boxes[0]
      if seq.absent[0] or not np.all(np.isfinite(box)):
        raise data_error(seq.dataset, seq.name, None, f"no initial box: frame 0 of {seq.name} "
                         "is absent or NaN", frame=0)
      if box[2] <= 0 or box[3] <= 0:
        raise data_error(seq.dataset, seq.name, None, f"the first box of {seq.name} "
                         f"{tuple(seq.gt[0].tolist())} has w or h <= 0 (mode {mode} starts "
                         "from it)", frame=0)
    if Mode(mode).reads_text and not (seq.sentence or "").strip():
      why = "has no sentence" if seq.sentence is None else "has an empty sentence"
      raise data_error(seq.dataset, seq.name, None, f"mode {mode} needs a sentence and "
                       f"{seq.name} {why} (use --mode bbox)", frame=0)


def shard_sequences(seqs: list[Sequence], index: int, count: int) -> list[Sequence]:
  """This shard's share of the sequences: longest first dealt round-robin, so shards get about
  the same number of frames. Every shard computes the same deal (a pure function of the list)."""
  if not 0 <= index < count:
    raise ValueError(f"shard {index}/{count}: expected 0 <= index < count")
  order = sorted(seqs, key=lambda s: (-len(s), s.name))
  return order[index::count]


def track(tracker, seqs: list[Sequence], results_dir: str, mode: str, *,
          batch_sequences: int = 1, text_ablation: str = "none",
          shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
  """Step 1: runs `tracker` (LGTracker or StaticTracker) on every unfinished sequence of this
  shard, `batch_sequences` at a time, writing each sequence's result file as it finishes.

  Sentences are ablated over the whole split (so shards agree on who gets whose sentence).
  Returns {'frames', 'seconds', 'fps', 'skipped', 'batch_sequences', 'shard'}.
  """
  check_inputs(seqs, mode)
  os.makedirs(results_dir, exist_ok=True)
  sentences = ablate_sentences(seqs, text_ablation)
  mine = shard_sequences(seqs, *shard)
  todo = [s for s in mine if not results.is_done(results_dir, s.name)]
  jobs = [Job(s, Frames(s), s.boxes[0] if Mode(mode).needs_box else None, sentences[s.name])
          for s in todo]
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


# --- step 2: score ------------------------------------------------------------------------------


def score(dataset: str, split: str, seqs: list[Sequence], results_dir: str, *,
          name: str = "tracker", others: dict[str, str] | None = None,
          options: ScoreOptions = ScoreOptions()) -> dict[str, dict] | None:
  """Step 2: {tracker: summary} of the result files in `results_dir` (as `name`, first) and in
  each of `others` ({name: directory}), scored on the same sequences the same way (the
  benchmark's `Scoring`); each summary also names its 'results_dir'. None for a split only the
  benchmark's server scores (its ground truth is withheld)."""
  scoring = _scoring_for(dataset, split, others)
  if scoring is None:
    return None
  dirs = {name: results_dir, **(others or {})}
  return {n: {**scoring.score(seqs, d, options), "results_dir": d} for n, d in dirs.items()}


def _scoring_for(dataset: str, split: str, others: dict[str, str] | None) -> Scoring | None:
  """The split's `Scoring` (None: server-scored); a ValueError when `others` are to be compared
  and the split's scoring cannot tabulate them."""
  scoring = benchmark(dataset).scoring_of(dataset, split)
  if others and (scoring is None or not scoring.compares):
    kind = "its evaluation server" if scoring is None else scoring.protocol
    raise ValueError(f"--compare tables are OPE scores; {dataset} {split} is scored by {kind}")
  return scoring


# --- step 3: report -----------------------------------------------------------------------------


def report(results_dir: str, record: dict, scores: dict[str, dict] | None,
           seqs: list[Sequence], *, visualize: str | None = None) -> dict:
  """Step 3: writes `metrics.json` and the plots; returns the metrics.json record.

  `record`: the run's provenance ('tracker' (the name in `scores`), 'dataset', 'split', 'mode',
  'text_ablation', 'protocol', ... and whatever else metrics.json should carry). `scores`: from
  `score`; None for a server-scored split, whose result files are packed as its submission
  archive instead. More than one tracker in `scores` adds `compare.txt` and `compare/` plots; a
  'per_attribute' breakdown adds `attributes.png`. `visualize` 'SEQ,SEQ': a GIF and a contact
  sheet per sequence under `visualize/`.
  """
  record = dict(record)
  dataset, split, name = record["dataset"], record["split"], record["tracker"]
  title = f"{dataset} {split} ({record['mode']})"
  if visualize:
    record["visualizations"] = _visualize(seqs, visualize, record.get("text_ablation", "none"),
                                          results_dir)
  if scores is None:
    bench = benchmark(dataset)
    record["submission"] = protocols.write_submission(dataset, seqs, results_dir,
                                                      bench.submission)
    record["server"] = bench.server
    return write_metrics(results_dir, record)
  scoring = benchmark(dataset).scoring_of(dataset, split)
  own = {k: v for k, v in scores[name].items() if k != "results_dir"}
  record = {**own, **record}
  if scoring.protocol:
    record["protocol"] = scoring.protocol
  record["plots"] = scoring.plot(results_dir, {name: scores[name]}, title)
  if len(scores) > 1:
    record["compare"] = {n: {**{k: s[k] for k in scoring.headline},
                             "results_dir": s["results_dir"]} for n, s in scores.items()}
    with open(os.path.join(results_dir, "compare.txt"), "w", encoding="utf-8") as f:
      f.write(compare_lib.table(record["compare"]) + "\n")
    record["compare_plots"] = scoring.plot(os.path.join(results_dir, "compare"), scores, title)
  if "per_attribute" in own:
    record["attribute_plot"] = plots.plot_attributes(
        results_dir, {n: s["per_attribute"] for n, s in scores.items()}, title)
  return write_metrics(results_dir, record)


def write_metrics(results_dir: str, record: dict) -> dict:
  """Writes `record` as `<results_dir>/metrics.json` (atomically); returns it."""
  results.write_json_atomic(os.path.join(results_dir, "metrics.json"), record)
  return record


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


# --- one evaluation directory: its lock and its run.json ----------------------------------------


class ResultsLock:
  """`<results_dir>/.eval.lock` (one per shard: `.eval.shard-<i>-of-<n>.lock`) while an
  evaluation writes there: created with O_CREAT | O_EXCL, it holds 'pid host'; removed on exit.
  A lock whose process is gone (same host, pid dead, or our own pid: a reused one) is taken over;
  a live one is a ValueError naming the directory and the pid holding it.

  `create`: make the directory first; if the evaluation then fails leaving it empty, it goes
  too (a failed start leaves nothing behind)."""

  def __init__(self, results_dir: str, shard: tuple[int, int] = (0, 1), create: bool = False):
    self.results_dir = results_dir
    self._create = create and not os.path.isdir(results_dir)
    name = ".eval.lock" if shard[1] == 1 else f".eval.shard-{shard[0]}-of-{shard[1]}.lock"
    self.path = os.path.join(results_dir, name)
    self._mine = f"{os.getpid()} {socket.gethostname()}"

  def __enter__(self) -> "ResultsLock":
    if self._create:
      os.makedirs(self.results_dir, exist_ok=True)
    if not os.path.isdir(self.results_dir):
      raise FileNotFoundError(f"results directory {self.results_dir} does not exist")
    for _ in range(3):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._holder()
        if holder is not None:
          raise ValueError(f"{self.results_dir} is in use by another evaluation (pid "
                           f"{holder}, lock {self.path}); wait for it to finish, or delete the "
                           "lock if that process is gone") from None
        logging.warning("taking over the stale lock %s", self.path)
        try:
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(self._mine + "\n")
      return self
    raise ValueError(f"could not lock {self.results_dir} ({self.path} keeps reappearing)")

  def __exit__(self, exc_type, *_) -> None:
    try:
      with open(self.path, encoding="utf-8") as f:
        if f.read().strip() != self._mine:
          return  # not ours any more (taken over after we were presumed dead)
      os.remove(self.path)
    except FileNotFoundError:
      pass
    if exc_type is not None and self._create and not os.listdir(self.results_dir):
      os.rmdir(self.results_dir)

  def _holder(self) -> str | None:
    """'<pid> on <host>' of a live holder; None when the lock is stale."""
    try:
      with open(self.path, encoding="utf-8") as f:
        text = f.read().strip()
      age = time.time() - os.stat(self.path).st_mtime
    except FileNotFoundError:
      return None
    pid, _, host = text.partition(" ")
    if not pid.isdigit():  # being written right now, or garbage left by a crash
      return "unknown" if age < 10 else None
    if host and host != socket.gethostname():
      return f"{pid} on {host}"  # cannot tell from here whether it is alive
    if int(pid) == os.getpid():
      return None  # a previous process that had our pid (containers reuse them)
    try:
      os.kill(int(pid), 0)
    except ProcessLookupError:
      return None
    except PermissionError:
      pass  # alive, another user's
    return pid


def config_hash(config) -> str | None:
  """The config's `config_io.sha256`, or None without a config."""
  return None if config is None else config_io.sha256(config)


def check_manifest(results_dir: str, manifest: dict) -> None:
  """When `results_dir` holds a `run.json`, checks that it describes the same run: mixing result
  files of different checkpoints (or steps), configs, modes or text ablations in one directory
  would silently corrupt the scores. One line naming what differs, both values."""
  path = os.path.join(results_dir, "run.json")
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    old = json.load(f)
  diff = {k: (old.get(k), v) for k, v in manifest.items() if old.get(k) != v}
  if diff:
    raise ValueError(f"{results_dir} holds results of another run ({path}): differs in "
                     + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                     + "; use another --results_dir, or --overwrite to delete those results")


def clear_results(results_dir: str) -> None:
  """Deletes what an evaluation writes in `results_dir` before an `--overwrite` run: every
  `*.txt` (result, time and compare files), the PNGs, run.json, metrics.json, submission
  archives, unfinished atomic writes (`.*.tmp`), compare/ and visualize/. Other files stay, and
  so do the locks."""
  for entry in os.listdir(results_dir):
    path = os.path.join(results_dir, entry)
    if os.path.isdir(path):
      if entry in ("compare", "visualize"):
        shutil.rmtree(path)
      continue
    ours = (entry in ("run.json", "metrics.json")
            or entry.endswith((".txt", ".png", "_submission.zip"))
            or (entry.startswith(".") and entry.endswith(".tmp")))
    if ours:
      os.remove(path)


# --- eval.py --------------------------------------------------------------------------------------


def run(*, config, checkpoint: str | None, dataset: str | None, data_root: str | None,
        split: str, results_dir: str, mode: str | None, tracker: str, analyze_only: bool,
        sequences_file: str | None, protocol: str, validity: str, batch_sequences: int = 1,
        text_ablation: str = "none", compare: str | None = None,
        visualize: str | None = None, shard: tuple[int, int] | None = None,
        attributes_dir: str | None = None, weights: str | None = None,
        overwrite: bool = False) -> dict | None:
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
  `overwrite`: delete the directory's earlier results (once the model has loaded) instead of
  refusing to mix them with this run's.
  """
  if config is None and (dataset is None or data_root is None or mode is None):
    raise ValueError("without --config, give --dataset, --data_root and --mode")
  dataset = dataset or config.eval.dataset
  data_root = data_root or config.data.root
  mode = mode or config.eval.mode
  bench = benchmark(dataset)
  name = tracker if text_ablation == "none" else f"{tracker} (text {text_ablation})"
  others = parse_compare(compare)
  _scoring_for(dataset, split, others)  # what cannot be scored fails before any tracking
  if name in others:
    raise ValueError(f"--compare name {name!r} is this run's own name")
  if not analyze_only:
    _check_model_args(tracker, config, checkpoint, weights)  # before anything is created
  seqs = bench.load(dataset, data_root, split, _read_sequence_list(sequences_file),
                    frames_required=not analyze_only)
  record = {"tracker": name, "dataset": dataset, "split": split, "mode": mode,
            "text_ablation": text_ablation, "protocol": protocol, "validity": validity,
            "results_dir": results_dir, "data_root": data_root, "checkpoint": checkpoint,
            "weights": weights,
            "first_frame": "ground truth" if Mode(mode).needs_box else "grounded by the model (mode 1)"}
  if config is not None:
    record["config"] = config.to_dict()
  options = ScoreOptions(validity, protocol, attributes_dir)

  def score_and_report() -> dict:
    scores = score(dataset, split, seqs, results_dir, name=name, others=others, options=options)
    return report(results_dir, record, scores, seqs, visualize=visualize)

  if analyze_only:
    with ResultsLock(results_dir):
      return score_and_report()
  check_inputs(seqs, mode)
  independent = shard is not None
  if shard is None:
    import jax  # pylint: disable=import-outside-toplevel
    shard = (jax.process_index(), jax.process_count())
  if overwrite and shard[1] > 1:
    raise ValueError(f"--overwrite with {shard[1]} shards: their processes would delete each "
                     f"other's results; delete {results_dir} by hand instead")
  manifest = {"tracker": tracker, "dataset": dataset, "split": split, "mode": mode,
              "text_ablation": text_ablation,
              "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
              **({"weights": os.path.abspath(weights)} if weights else {}),
              "checkpoint_step": _latest_step(tracker, checkpoint),
              "config_hash": config_hash(config) if tracker != "static" else None}
  with ResultsLock(results_dir, shard, create=True):
    if not overwrite:
      check_manifest(results_dir, manifest)  # fail before the slow model load
    model, manifest["checkpoint_step"] = _build_tracker(tracker, config, checkpoint, weights)
    if overwrite:
      clear_results(results_dir)
    else:
      check_manifest(results_dir, manifest)  # a newer step may have been saved meanwhile
    results.write_json_atomic(os.path.join(results_dir, "run.json"), manifest)
    record.update(checkpoint_step=manifest["checkpoint_step"],
                  config_hash=manifest["config_hash"])
    record["speed"] = track(model, seqs, results_dir, mode, batch_sequences=batch_sequences,
                            text_ablation=text_ablation, shard=shard)
    if shard[1] > 1:
      if independent:
        print(f"shard {shard[0]}/{shard[1]} done: score with --analyze_only once all shards are")
        return None
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      multihost_utils.sync_global_devices(f"eval {results_dir}")
      if shard[0] != 0:
        return None
    return score_and_report()


def _check_model_args(tracker: str, config, checkpoint: str | None, weights: str | None) -> None:
  """The tracker's arguments, checked without creating anything (a mistyped checkpoint path
  must not become a directory)."""
  if tracker == "static":
    return
  if config is None:
    raise ValueError("--tracker lgtrack needs --config and one of --checkpoint (a train "
                     "workdir) or --weights (a converted weights directory)")
  from lgtrack_jax.tracking import online  # pylint: disable=import-outside-toplevel
  online.check_source(checkpoint, weights)


def _latest_step(tracker: str, checkpoint: str | None) -> int | None:
  if tracker == "static" or not checkpoint:
    return None
  from lgtrack_jax import checkpoint as checkpoint_lib  # pylint: disable=import-outside-toplevel
  return checkpoint_lib.latest_step(checkpoint)


def _build_tracker(tracker: str, config, checkpoint: str | None, weights: str | None):
  """(tracker, checkpoint step or None)."""
  # pylint: disable=import-outside-toplevel
  if tracker == "static":
    from lgtrack_jax.tracking.tracker import StaticTracker
    return StaticTracker(), None
  from lgtrack_jax.tracking import online
  return online.build_lgtracker(config, checkpoint, weights)


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
