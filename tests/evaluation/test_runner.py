"""eval.py end to end on synthetic data: result files, metrics.json, plots, resume, analyze_only."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from input_pipeline import sources
from lgtrack_jax.evaluation import results, runner
from tests.conftest import synthetic_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return synthetic_root(tmp_path_factory, num_train=2, num_test=2, num_frames=15, seed=1)


def _run(config, data_root, results_dir, **kw):
  args = dict(config=config, checkpoint=None, dataset="synthetic", data_root=data_root,
              split="test", results_dir=results_dir, mode="nl_bbox", tracker="lgtrack",
              analyze_only=False, sequences_file=None, protocol="official", validity="all4")
  args.update(kw)
  return runner.run(**args)


@pytest.mark.parametrize("mode", ["nl_bbox", "nl"])
def test_lgtrack_eval_writes_results_metrics_and_plots(config, data_root, workdir, tmp_path, mode):
  out = str(tmp_path / mode)
  record = _run(config, data_root, out, checkpoint=workdir, mode=mode)
  seqs = sources.load("synthetic", data_root, "test")
  for seq in seqs:
    boxes = results.read_result(os.path.join(out, f"{seq.name}.txt"))
    assert boxes.shape == (len(seq), 4)
  with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
    saved = json.load(f)
  for key in ("auc", "precision", "norm_precision"):
    assert 0 <= saved[key] <= 100
  assert set(saved["per_sequence"]) == {s.name for s in seqs}
  assert saved["mode"] == mode and saved["protocol"] == "official" and saved["validity"] == "all4"
  assert saved["checkpoint"] == workdir and saved["checkpoint_step"] == 3
  assert saved["config"]["model"]["hidden_size"] == config.model.hidden_size
  for name in ("success.png", "precision.png", "norm_precision.png"):
    with open(os.path.join(out, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert record["auc"] == saved["auc"]


def test_rerun_skips_finished_sequences_and_analyze_only_agrees(config, data_root, tmp_path):
  out = str(tmp_path / "static")
  first = _run(config, data_root, out, tracker="static", mode="bbox")
  assert first["speed"]["skipped"] == 0
  seqs = sources.load("synthetic", data_root, "test")
  # A killed evaluation: one sequence's result is gone; the rerun only redoes that one.
  os.remove(os.path.join(out, f"{seqs[0].name}.txt"))
  kept = os.path.join(out, f"{seqs[1].name}.txt")
  mtime = os.stat(kept).st_mtime_ns
  second = _run(config, data_root, out, tracker="static", mode="bbox")
  assert second["speed"]["skipped"] == 1 and os.stat(kept).st_mtime_ns == mtime
  analyzed = _run(None, data_root, out, tracker="static", mode="bbox", analyze_only=True)
  assert analyzed["auc"] == pytest.approx(first["auc"])
  assert analyzed["per_sequence"] == first["per_sequence"]


def test_perfect_predictions_score_95_24(data_root, tmp_path):
  out = str(tmp_path / "perfect")
  seqs = sources.load("synthetic", data_root, "test")
  for seq in seqs:
    results.write_result(out, seq.name, seq.gt, None)
  assert not any(s.absent.any() for s in seqs)  # 15-frame synthetic sequences have no absences
  record = _run(None, data_root, out, mode="bbox", analyze_only=True)
  assert record["auc"] == pytest.approx(95.24, abs=0.005)
  assert record["precision"] == pytest.approx(100.0)
  assert record["norm_precision"] == pytest.approx(100.0)


def test_short_result_file_names_the_file(data_root, tmp_path):
  out = str(tmp_path / "short")
  seqs = sources.load("synthetic", data_root, "test")
  for seq in seqs:
    results.write_result(out, seq.name, seq.gt[:-3], None)
  with pytest.raises(ValueError, match=f"{seqs[0].name}.txt"):
    _run(None, data_root, out, mode="bbox", analyze_only=True)


def test_eval_cli_static_without_tensorflow(data_root, tmp_path):
  """eval.py end to end; evaluation must not even import TensorFlow (GPU boxes lack it)."""
  out = str(tmp_path / "cli")
  code = ("import sys, runpy; sys.argv = sys.argv[1:];"
          "exit_code = 0\n"
          "try:\n  runpy.run_path('eval.py', run_name='__main__')\n"
          "except SystemExit as e:\n  exit_code = e.code or 0\n"
          "assert 'tensorflow' not in sys.modules, 'eval imported tensorflow'\n"
          "sys.exit(exit_code)")
  proc = subprocess.run(
      [sys.executable, "-c", code, "eval.py", "--config=configs/tiny.py", "--tracker=static",
       "--dataset=synthetic", f"--data_root={data_root}", f"--results_dir={out}"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "AUC" in proc.stdout
  with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
    assert np.isfinite(json.load(f)["auc"])


def test_text_ablations(data_root):
  seqs = sources.load("synthetic", data_root, "test") + sources.load("synthetic", data_root,
                                                                      "train")
  own = {s.name: s.sentence for s in seqs}
  assert runner.ablate_sentences(seqs, "none") == own
  assert set(runner.ablate_sentences(seqs, "empty").values()) == {""}
  shuffled = runner.ablate_sentences(seqs, "shuffled")
  assert sorted(shuffled.values()) == sorted(own.values())  # a permutation of the sentences ...
  assert all(shuffled[n] != own[n] for n in own)  # ... in which no sequence keeps its own
  assert shuffled == runner.ablate_sentences(seqs, "shuffled")  # deterministic
  with pytest.raises(ValueError, match="text_ablation"):
    runner.ablate_sentences(seqs, "reversed")


def test_ablated_run_is_recorded_and_cannot_mix_with_another_run(config, data_root, workdir,
                                                                 tmp_path):
  out = str(tmp_path / "shuffled")
  record = _run(config, data_root, out, checkpoint=workdir, mode="nl",
                text_ablation="shuffled", batch_sequences=2)
  assert record["text_ablation"] == "shuffled" and record["tracker"] == "lgtrack (text shuffled)"
  assert record["first_frame"].startswith("grounded") and record["speed"]["batch_sequences"] == 2
  # Resuming into the same directory with other settings would mix two runs' result files.
  with pytest.raises(ValueError, match="text_ablation: 'shuffled' there, 'none' now"):
    _run(config, data_root, out, checkpoint=workdir, mode="nl")


def test_compare_and_visualize(config, data_root, tmp_path):
  seqs = sources.load("synthetic", data_root, "test")
  perfect = str(tmp_path / "perfect")
  for seq in seqs:
    results.write_result(perfect, seq.name, seq.gt, None)
  out = str(tmp_path / "static")
  record = _run(config, data_root, out, tracker="static", mode="bbox",
                compare=f"Oracle={perfect}", visualize=seqs[0].name)
  assert list(record["compare"]) == ["static", "Oracle"]
  assert record["compare"]["Oracle"]["auc"] == pytest.approx(95.24, abs=0.005)
  with open(os.path.join(out, "compare.txt"), encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert lines[1].startswith("Oracle") and lines[2].startswith("static")  # best first
  for path in record["compare_plots"]:
    assert os.path.getsize(path) > 1000
  from PIL import Image  # pylint: disable=import-outside-toplevel
  (vis,) = record["visualizations"]
  with Image.open(vis["gif"]) as gif:
    assert gif.n_frames == len(seqs[0])
  with Image.open(vis["sheet"]) as sheet:
    assert sheet.width == 4 * 320
  with pytest.raises(ValueError, match="NAME=DIR"):
    _run(config, data_root, out, tracker="static", mode="bbox", compare="nodir")
  with pytest.raises(ValueError, match="not among"):
    _run(config, data_root, out, tracker="static", mode="bbox", visualize="no-such-seq")


def test_shards_cover_the_split_once_and_score_like_one_process(config, data_root, tmp_path):
  seqs = sources.load("synthetic", data_root, "test") + sources.load("synthetic", data_root,
                                                                      "train")
  deals = [runner.shard_sequences(seqs, i, 3) for i in range(3)]
  assert sorted(s.name for d in deals for s in d) == sorted(s.name for s in seqs)
  whole = _run(config, data_root, str(tmp_path / "one"), tracker="static", mode="bbox")
  out = str(tmp_path / "sharded")
  for i in range(2):  # two independent processes, then scoring
    assert _run(config, data_root, out, tracker="static", mode="bbox", shard=(i, 2)) is None
  scored = _run(None, data_root, out, tracker="static", mode="bbox", analyze_only=True)
  assert scored["auc"] == whole["auc"] and scored["per_sequence"] == whole["per_sequence"]
