"""benchmarks/speed.py runs end to end and prints one well-formed JSON line per measurement and
one summary line per switch set. Nothing here is timed: only the lines' form is checked."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--config=configs/tiny.py", "--config.model.depth=1", "--config.model.emim.layers=(0,)",
         "--config.model.text.num_layers=1"]
# The summary line's figures with --batch_sequences=1,2 (null only where not measured).
SUMMARY_FIGURES = {"latency_ms_k1", "vit_latency_ms_k1", "ratio_interleaved", "ratio_quartiles",
                   "gflops_per_frame", "vit_gflops_per_frame", "fps_k1", "fps_k2", "vit_fps_k1",
                   "vit_fps_k2", "mfu_k1", "mfu_k2", "step_memory_mb_k1", "step_memory_mb_k2",
                   "peak_tflops", "peak_memory_mb", "peak_memory_unit"}
RUN_FIELDS = {"config", "device", "switches", "dtype", "attention", "conv", "ce", "search_window",
              "template_cache"}


def _run(*args):
  proc = subprocess.run([sys.executable, "benchmarks/speed.py", *SMALL, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
  summaries = [l for l in lines if l["name"] == "summary"]
  lines = [l for l in lines if l["name"] != "summary"]
  for line in lines:
    assert set(line) >= {"name", "value", "unit", "batch_sequences"} | RUN_FIELDS
    assert line["value"] >= 0 and line["config"] == "configs/tiny.py"
  return lines, summaries


def test_tracking_benchmark_over_two_switch_sets():
  # Every speed switch on (the plain float32 model is what every other test runs), as the
  # config's flags, so in both sets; the second set drops CE: measured in full again, its bare
  # ViT (the same one, compiled once) timed again, one summary line each.
  lines, summaries = _run("--what=track", "--batch_sequences=1,2", "--frames=2",
                          "--frame_size=90,160", "--config.model.ce.layers=(0,)",
                          "--config.model.dtype=bfloat16", "--config.model.conv=matmul",
                          "--config.model.attention=matmul",
                          "--switch_sets=default;model.ce.layers=()")
  assert all(l["dtype"] == "bfloat16" and l["conv"] == "matmul" and l["attention"] == "matmul"
             and l["template_cache"] is False for l in lines + summaries)
  assert [(s["switches"], s["ce"]) for s in summaries] == [
      ({}, [[0], 0.7]), ({"model.ce.layers": []}, None)]
  for summary in summaries:
    assert set(summary) == {"name"} | RUN_FIELDS | SUMMARY_FIGURES, set(summary)
    assert summary["config"] == "configs/tiny.py"
    assert all(summary[k] is not None for k in SUMMARY_FIGURES), summary
    assert all(summary[k] > 0 for k in SUMMARY_FIGURES - {"ratio_quartiles", "peak_memory_unit"})
    low, high = summary["ratio_quartiles"]
    assert 0 < low <= high

  for summary in summaries:
    own = [l for l in lines if l["switches"] == summary["switches"]]
    names = {(l["name"], l["batch_sequences"]) for l in own}
    for k in (1, 2):
      for name in ("track_frames_per_s", "vit_frames_per_s", "gflops_per_frame", "compile_s",
                   "mfu", "step_memory_mb"):
        assert (name, k) in names, (name, k)
    assert {("track_latency_ms", 1), ("vit_latency_ms", 1), ("vit_gflops_per_frame", 1),
            ("track_vs_vit_latency", 1), ("peak_memory_mb", None), ("peak_tflops", None)} <= names
    by_name = {(l["name"], l["batch_sequences"]): l for l in own}
    flops = {k: by_name[("gflops_per_frame", k)]["value"] for k in (1, 2)}
    assert flops[1] > 0 and abs(flops[2] - flops[1]) / flops[1] < 0.05  # per frame, whatever K
    # The summary repeats the set's own measurement lines (printed rounded alike).
    for key, name, k in (("latency_ms_k1", "track_latency_ms", 1),
                         ("fps_k2", "track_frames_per_s", 2),
                         ("vit_fps_k1", "vit_frames_per_s", 1),
                         ("ratio_interleaved", "track_vs_vit_latency", 1),
                         ("gflops_per_frame", "gflops_per_frame", 1), ("mfu_k2", "mfu", 2),
                         ("step_memory_mb_k2", "step_memory_mb", 2)):
      assert summary[key] == by_name[(name, k)]["value"], key
    assert summary["ratio_quartiles"] == by_name[("track_vs_vit_latency", 1)][
        "frame_ratio_quartiles"]
    # The test session caches compilations on disk (conftest): the lines say so.
    assert all(l["compilation_cache"] for l in own if l["name"] == "compile_s")
    assert by_name[("vit_latency_ms", 1)]["value"] == pytest.approx(
        1e3 / by_name[("vit_frames_per_s", 1)]["value"], rel=0.01)
  # The same bare ViT; CE after block 0 drops search tokens, so fewer FLOPs than without.
  assert summaries[0]["vit_gflops_per_frame"] == summaries[1]["vit_gflops_per_frame"]
  assert summaries[0]["gflops_per_frame"] < summaries[1]["gflops_per_frame"]


@pytest.mark.parametrize("switch_sets, message", [
    ("default;model.ce.layrs=(3,)", "the config has no key model.ce.layrs"),
    ("model.ce.layers=3", "model.ce.layers=3"),
    ("model.dtype", "'model.dtype' in 'model.dtype' is not key=value"),
])
def test_bad_switch_set_is_a_clear_error_before_any_work(switch_sets, message):
  proc = subprocess.run([sys.executable, "benchmarks/speed.py", *SMALL,
                         f"--switch_sets={switch_sets}"], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
  assert not proc.stdout  # nothing was measured


@pytest.mark.slow
def test_training_benchmark():
  lines, summaries = _run("--what=train", "--train_batch=2", "--train_steps=1")
  names = {(l["name"], l["batch_sequences"]) for l in lines}
  for name in ("train_examples_per_s", "gflops_per_train_example", "train_forward_ms",
               "train_forward_backward_ms", "train_step_ms", "compile_s", "mfu"):
    assert (name, None) in names, name
  ms = {l["name"]: l["value"] for l in lines}
  assert ms["train_forward_ms"] < ms["train_forward_backward_ms"]
  (summary,) = summaries
  assert summary["train_examples_per_s"] > 0 and summary["mfu_train"] > 0
  assert summary["latency_ms_k1"] is None  # tracking not run
