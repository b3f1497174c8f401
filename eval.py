"""Evaluates a tracker on a benchmark split: result files, metrics.json and plots.

  python eval.py --config configs/tiny.py --checkpoint runs/demo/train --dataset synthetic \
      --data_root runs/demo/data --results_dir runs/demo/eval/lgtrack [--mode nl_bbox]
  python eval.py --config configs/ostrack_b256.py --weights W --benchmark lasot --mode bbox ...
  python eval.py --tracker static ...            # the stay-at-the-first-box baseline
  python eval.py --analyze_only --results_dir DIR --dataset ... --data_root ...
  python eval.py ... --mode nl --text_ablation shuffled   # does the sentence matter?
  python eval.py ... --batch_sequences 8 --compare OSTrack=raw/ostrack --visualize seq-1,seq-2
  python eval.py ... --overwrite        # replace the results of another run in --results_dir

Needs no TensorFlow (jax, flax, numpy, Pillow): evaluation runs on GPU boxes without it. A user
error (bad data, a checkpoint of another config, a directory in use, ...) is one line on stderr,
`eval.py: error: ...`, and exit status 2.
"""


from absl import app, flags
from ml_collections import config_flags

from lgtrack_jax import cli, modes
from lgtrack_jax.training import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                          lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Train workdir to load the latest params of.")
_WEIGHTS = flags.DEFINE_string(
    "weights", None, "Converted weights directory (`python -m lgtrack_jax.weights.convert`, e.g. "
    "a released OSTrack checkpoint) holding every param of the config's model; instead of "
    "--checkpoint.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "Benchmark: lasot | lasot_ext | tnl2k | otb99_lang | got10k (val: AO/SR; "
    "test: submission) | trackingnet (test: submission) | synthetic.")
_DATA_ROOT = flags.DEFINE_string("data_root", None, "Dataset root directory.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", None, "Where result files and metrics go.")
_MODE = flags.DEFINE_enum("mode", None, modes.NAMES,
                          "Initialisation: box + sentence, box only, sentence only. "
                          "Default: config.eval.mode.")
_TRACKER = flags.DEFINE_enum("tracker", "lgtrack", ["lgtrack", "static"], "Tracker to run.")
_ANALYZE_ONLY = flags.DEFINE_bool("analyze_only", False,
                                  "Score existing result files only: no model, no images.")
_SEQUENCES = flags.DEFINE_string("sequences", None, "File listing the sequences to restrict to.")
_PROTOCOL = flags.DEFINE_enum("protocol", "official", ["official", "pytracking"],
                              "Invalid-ground-truth rule for precision (docs/design.md section 9).")
_VALIDITY = flags.DEFINE_enum("validity", "all4", ["all4", "wh"],
                              "Valid ground truth: all of x,y,w,h > 0 (official) or w,h > 0.")
_BATCH = flags.DEFINE_integer("batch_sequences", None,
                              "Sequences tracked at once (default config.eval.batch_sequences).")
_ABLATION = flags.DEFINE_enum("text_ablation", "none", ["none", "empty", "shuffled"],
                              "Does the language matter? Track with the true sentences, empty "
                              "ones, or each sequence with another sequence's sentence.")
_COMPARE = flags.DEFINE_string("compare", None,
                               "NAME=DIR,NAME=DIR: other trackers' raw results to score alongside.")
_VISUALIZE = flags.DEFINE_string("visualize", None,
                                 "SEQ[,SEQ]: write a GIF and a contact sheet per sequence.")
_ATTRIBUTES = flags.DEFINE_string(
    "attributes", None, "Directory of per-sequence attribute flags (<seq>.txt, e.g. the LaSOT "
    "toolkit's annos/att/; names.txt names them): per-attribute scores and attributes.png.")
_SHARD = flags.DEFINE_string("shard", None,
                             "INDEX/COUNT: track only this share of the sequences (independent "
                             "processes, e.g. one per GPU); score later with --analyze_only. "
                             "Default: one share per JAX process, process 0 scores.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Delete the earlier results in --results_dir (its *.txt, PNGs, JSON, "
    "compare/ and visualize/; once the model has loaded) instead of refusing to mix them with "
    "this run's (another checkpoint step, config, mode, ...).")
flags.DEFINE_alias("benchmark", "dataset")
flags.mark_flags_as_required(["results_dir"])


def _parse_shard(value: str | None) -> tuple[int, int] | None:
  if value is None:
    return None
  index, sep, count = value.partition("/")
  if not sep or not index.isdigit() or not count.isdigit():
    raise app.UsageError(f"--shard={value!r}: expected INDEX/COUNT, e.g. 0/4")
  return int(index), int(count)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.maybe_initialize()
  try:
    record = _evaluate()
  except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
    cli.fail("eval.py", e)  # the project's user errors (DataError is a ValueError): no traceback
  if record is not None:
    _print(record)


def _evaluate() -> dict | None:
  from lgtrack_jax.evaluation import runner  # pylint: disable=import-outside-toplevel
  return runner.run(
      config=_CONFIG.value, checkpoint=_CHECKPOINT.value, weights=_WEIGHTS.value,
      dataset=_DATASET.value,
      data_root=_DATA_ROOT.value, split=_SPLIT.value, results_dir=_RESULTS_DIR.value,
      mode=_MODE.value, tracker=_TRACKER.value, analyze_only=_ANALYZE_ONLY.value,
      sequences_file=_SEQUENCES.value, protocol=_PROTOCOL.value, validity=_VALIDITY.value,
      batch_sequences=_BATCH.value or (_CONFIG.value.eval.batch_sequences if _CONFIG.value else 1),
      text_ablation=_ABLATION.value, compare=_COMPARE.value, visualize=_VISUALIZE.value,
      shard=_parse_shard(_SHARD.value), attributes_dir=_ATTRIBUTES.value,
      overwrite=_OVERWRITE.value)


def _print(record: dict) -> None:
  where = f"{record['tracker']} on {record['dataset']}/{record['split']} ({record['mode']})"
  if "submission" in record:
    print(f"{where}: ground truth withheld; submit {record['submission']} to {record['server']}")
  elif "ao" in record:
    print(f"{where}: AO {record['ao']:.2f}  SR0.5 {record['sr50']:.2f}  SR0.75 "
          f"{record['sr75']:.2f}  -> {record['results_dir']}/metrics.json")
  else:
    print(f"{where}: AUC {record['auc']:.2f}  P@20 {record['precision']:.2f}  "
          f"NP@0.2 {record['norm_precision']:.2f}  -> {record['results_dir']}/metrics.json")
  if "compare" in record:
    from lgtrack_jax.evaluation import compare  # pylint: disable=import-outside-toplevel
    print(compare.table(record["compare"]))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser("eval.py", _CONFIG))
