"""benchmarks/speed.py runs end to end and prints one well-formed JSON line per measurement."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--config=configs/tiny.py", "--config.model.depth=1", "--config.model.emim.layers=(0,)",
         "--config.model.text.num_layers=1"]


def _run(*args):
  proc = subprocess.run([sys.executable, "benchmarks/speed.py", *SMALL, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
  for line in lines:
    assert set(line) >= {"name", "value", "unit", "config", "batch_sequences", "device", "dtype",
                         "attention", "conv", "ce"}
    assert line["value"] >= 0 and line["config"] == "configs/tiny.py"
  return lines, {(l["name"], l["batch_sequences"]) for l in lines}


def test_tracking_benchmark():
  # With every speed switch on (the plain float32 model is what every other test runs).
  lines, names = _run("--what=track", "--batch_sequences=1,2", "--frames=2", "--frame_size=90,160",
                      "--config.model.ce.layers=(0,)", "--config.model.dtype=bfloat16",
                      "--config.model.conv=matmul", "--config.model.attention=matmul")
  assert all(l["ce"] == [[0], 0.7] and l["dtype"] == "bfloat16" and l["conv"] == "matmul"
             and l["attention"] == "matmul" for l in lines)
  for k in (1, 2):
    for name in ("track_frames_per_s", "vit_frames_per_s", "gflops_per_frame", "compile_s", "mfu"):
      assert (name, k) in names, (name, k)
  assert ("track_latency_ms", 1) in names and ("vit_latency_ms", 1) in names
  assert ("vit_gflops_per_frame", 1) in names
  assert ("peak_memory_mb", None) in names and ("peak_tflops", None) in names
  flops = {l["batch_sequences"]: l["value"] for l in lines if l["name"] == "gflops_per_frame"}
  assert flops[1] > 0 and abs(flops[2] - flops[1]) / flops[1] < 0.05  # per frame, whatever K
  by_name = {(l["name"], l["batch_sequences"]): l["value"] for l in lines}
  assert by_name[("track_vs_vit_latency", 1)] > 0
  ratio_line = next(l for l in lines if l["name"] == "track_vs_vit_latency")
  low, high = ratio_line["frame_ratio_quartiles"]
  assert 0 < low <= high
  # The test session caches compilations on disk (conftest): the lines say so.
  assert all(l["compilation_cache"] for l in lines if l["name"] == "compile_s")
  assert by_name[("vit_latency_ms", 1)] == pytest.approx(
      1e3 / by_name[("vit_frames_per_s", 1)], rel=0.01)  # values are printed rounded


@pytest.mark.slow
def test_training_benchmark():
  lines, names = _run("--what=train", "--train_batch=2", "--train_steps=1")
  for name in ("train_examples_per_s", "gflops_per_train_example", "train_forward_ms",
               "train_forward_backward_ms", "train_step_ms", "compile_s", "mfu"):
    assert (name, None) in names, name
  ms = {l["name"]: l["value"] for l in lines}
  assert ms["train_forward_ms"] < ms["train_forward_backward_ms"]
