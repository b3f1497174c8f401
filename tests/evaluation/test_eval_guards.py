"""What eval.py refuses, and how: scoring without frames, bad first boxes and sentences, a
checkpoint of another config, a mistyped checkpoint path, results of another run (run.json),
two evaluations in one directory (the lock). Each user error is one line naming where."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from input_pipeline import sources
from input_pipeline.sources.base import DataError
from lgtrack_jax.evaluation import results, runner
from lgtrack_jax import checkpoint as checkpoint_lib
from lgtrack_jax.tracking.tracker import Job, StaticTracker, check_request
from tests.conftest import synthetic_root
from tests.input_pipeline import layouts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return synthetic_root(tmp_path_factory, num_train=0, num_test=2, num_frames=8, seed=3)


def _run(data_root, results_dir, **kw):
  args = dict(config=None, checkpoint=None, dataset="synthetic", data_root=str(data_root),
              split="test", results_dir=str(results_dir), mode="bbox", tracker="static",
              analyze_only=False, sequences_file=None, protocol="official", validity="all4")
  args.update(kw)
  return runner.run(**args)


def _lasot(root, first_row, sentence="the cat"):
  """A LaSOT-layout split of cat-1 (first row `first_row`, `sentence`) and dog-1."""
  gt = layouts.boxes(6) + 1
  gt[0] = first_row
  layouts.write_lasot(root, "cat-1", gt=gt, sentence=sentence)
  layouts.write_lasot(root, "dog-1")
  (root / "testing_set.txt").write_text("cat-1\ndog-1\n")
  return root


def test_analyze_only_needs_no_frames(data_root, tmp_path):
  root = tmp_path / "data"
  shutil.copytree(data_root, root)
  first = _run(root, tmp_path / "out")
  for seq in sources.load("synthetic", str(root), "test"):
    shutil.rmtree(os.path.join(os.path.dirname(seq.frames[0])))  # the img/ folder
  scored = _run(root, tmp_path / "out", analyze_only=True)
  assert scored["auc"] == first["auc"] and scored["per_sequence"] == first["per_sequence"]
  with pytest.raises(DataError, match="missing image directory"):  # tracking needs them
    _run(root, tmp_path / "again")


@pytest.mark.parametrize("w, h", [(0, 8), (10, -1)])
def test_first_box_without_area_is_an_error_in_boxed_modes(tmp_path, w, h):
  root = _lasot(tmp_path / "lasot", [3, 4, w, h])
  for mode in ("bbox", "nl_bbox"):
    with pytest.raises(DataError) as info:
      _run(root, tmp_path / mode, dataset="lasot", mode=mode)
    msg = str(info.value)
    assert "w or h <= 0" in msg and "dataset=lasot, sequence=cat-1" in msg and "frame=0" in msg
    assert "\n" not in msg and not os.path.exists(tmp_path / mode)
  runner.check_inputs(sources.load("lasot", str(root), "test"), "nl")  # no box is read


def test_empty_sentence_fails_only_the_modes_that_need_one(tmp_path):
  root = _lasot(tmp_path / "lasot", [3, 4, 10, 8], sentence="  \n ")
  assert _run(root, tmp_path / "bbox", dataset="lasot")["num_sequences"] == 2
  seqs = sources.load("lasot", str(root), "test")
  for mode in ("nl", "nl_bbox"):
    with pytest.raises(DataError, match=f"mode {mode} needs a sentence and cat-1 has an empty "
                       "sentence.*sequence=cat-1"):
      runner.check_inputs(seqs, mode)
  with pytest.raises(DataError, match="sequence=cat-1"):
    _run(root, tmp_path / "nl_bbox", dataset="lasot", mode="nl_bbox")


def test_nl_mode_errors_name_the_sequence(data_root):
  (seq, _) = sources.load("synthetic", data_root, "test")
  with pytest.raises(ValueError, match=f"needs a sentence and none was given .sequence "
                     f"{seq.name}"):
    check_request("nl", None, None, True, seq.name)
  with pytest.raises(ValueError, match=f"sequence {seq.name}"):
    next(StaticTracker().track_many([Job(seq, [], None, seq.sentence)], "nl"))
  no_text = dataclasses.replace(seq, sentence=None)  # as in a dataset without sentences
  with pytest.raises(DataError, match=f"mode nl needs a sentence and {seq.name} has no sentence"):
    runner.check_inputs([no_text], "nl")


def test_checkpoint_of_another_config_names_the_params(workdir):
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  assert checkpoint_lib.check_params(workdir, config) == 3
  config.unlock()
  config.model.head.channels = 8
  with pytest.raises(ValueError) as info:
    checkpoint_lib.check_params(workdir, config)
  msg = str(info.value)
  assert "checkpoint (16,) vs config (8,)" in msg and "head" in msg and "\n" not in msg


def test_cli_errors_are_one_line_and_create_nothing(data_root, workdir, tmp_path):
  """eval.py on a checkpoint of the micro config with configs/tiny.py, and with a mistyped
  checkpoint path: `eval.py: error: ...` alone on stderr, status 2, nothing created."""
  def cli(*args):
    proc = subprocess.run(
        [sys.executable, "eval.py", "--config=configs/tiny.py", "--dataset=synthetic",
         f"--data_root={data_root}", "--verbosity=-1", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("eval.py: error: ")
    return lines[0]

  out = tmp_path / "out"
  line = cli(f"--checkpoint={workdir}", f"--results_dir={out}")
  assert "trained with another config" in line
  assert "blocks_0/attn/key/bias: checkpoint (2, 16) vs config (4, 32)" in line
  assert not out.exists()
  typo = tmp_path / "trian"
  line = cli(f"--checkpoint={typo}", f"--results_dir={out}")
  assert line == f"eval.py: error: checkpoint directory {typo} does not exist"
  assert not typo.exists() and not out.exists()
  line = cli(f"--checkpoint={workdir}", "--config.eval.windw=0.4")  # a flag error (cli.py)
  assert line.startswith("eval.py: error: a --config.* override names no field of the config: "
                         "'windw'") and '"window"' in line


def test_failed_start_leaves_no_run_json(data_root, workdir, tmp_path):
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  config.unlock()
  config.model.head.channels = 8
  out = tmp_path / "out"
  out.mkdir()
  with pytest.raises(ValueError, match="vs config"):
    _run(data_root, out, config=config, checkpoint=workdir, tracker="lgtrack")
  assert os.listdir(out) == []  # no run.json to block the right command
  with pytest.raises(FileNotFoundError, match="no checkpoint under"):
    _run(data_root, out, config=config, checkpoint=str(tmp_path), tracker="lgtrack")
  assert not (tmp_path / "checkpoints").exists()


def test_resuming_refuses_another_step_or_config(data_root, workdir, tmp_path):
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  out = tmp_path / "out"
  lgtrack = dict(config=config, checkpoint=workdir, tracker="lgtrack")
  earlier = {"tracker": "lgtrack", "dataset": "synthetic", "split": "test", "mode": "bbox",
             "text_ablation": "none", "checkpoint": os.path.abspath(workdir),
             "checkpoint_step": 2, "config_hash": runner.config_hash(config)}
  results.write_json_atomic(out / "run.json", earlier)
  results.write_result(str(out), "stale-1", np.ones((3, 4)))
  with pytest.raises(ValueError, match="checkpoint_step: 2 there, 3 now"):
    _run(data_root, out, **lgtrack)
  results.write_json_atomic(out / "run.json", {**earlier, "checkpoint_step": 3,
                                               "config_hash": "0123abcd"})
  with pytest.raises(ValueError, match=f"config_hash: '0123abcd' there, "
                     f"'{runner.config_hash(config)}' now.*--overwrite"):
    _run(data_root, out, **lgtrack)
  # --overwrite deletes the earlier results, then records this run.
  (out / "notes.md").write_text("not ours")
  record = _run(data_root, out, overwrite=True, **lgtrack)
  assert not (out / "stale-1.txt").exists() and (out / "notes.md").exists()
  with open(out / "run.json", encoding="utf-8") as f:
    manifest = json.load(f)
  assert manifest["checkpoint_step"] == 3 == record["checkpoint_step"]
  assert manifest["config_hash"] == runner.config_hash(config) == record["config_hash"]
  assert record["speed"]["skipped"] == 0 and record["num_sequences"] == 2
  assert _run(data_root, out, **lgtrack)["speed"]["skipped"] == 2  # the same run resumes


def test_overwrite_replaces_another_runs_results(data_root, tmp_path):
  out = tmp_path / "out"
  _run(data_root, out, mode="bbox", visualize=sources.load("synthetic", data_root, "test")[0].name)
  with pytest.raises(ValueError, match="mode: 'bbox' there, 'nl_bbox' now"):
    _run(data_root, out, mode="nl_bbox")
  record = _run(data_root, out, mode="nl_bbox", overwrite=True)
  assert record["speed"]["skipped"] == 0 and not (out / "visualize").exists()
  with pytest.raises(ValueError, match="--overwrite with 2 shards"):
    _run(data_root, out, mode="nl_bbox", overwrite=True, shard=(0, 2))


def test_one_evaluation_per_directory(data_root, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  lock = out / ".eval.lock"
  lock.write_text(f"{os.getppid()}\n")  # a live process holds it
  with pytest.raises(ValueError, match=f"{out} is in use by another evaluation .pid "
                     f"{os.getppid()}"):
    _run(data_root, out)
  with pytest.raises(ValueError, match="in use"):
    _run(data_root, out, analyze_only=True)
  assert lock.read_text() == f"{os.getppid()}\n" and not (out / "run.json").exists()
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  lock.write_text(f"{dead.pid}\n")  # its process is gone: the lock is taken over
  assert _run(data_root, out)["num_sequences"] == 2
  assert not lock.exists()  # released at exit
  with runner.ResultsLock(str(out)):  # held while it runs
    assert lock.read_text().split()[0] == str(os.getpid())
    with runner.ResultsLock(str(out), shard=(1, 2)):  # shards lock apart
      assert (out / ".eval.shard-1-of-2.lock").exists()
  assert os.listdir(out) and not any(e.endswith(".lock") for e in os.listdir(out))
