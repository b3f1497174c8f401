"""benchmarks/speed.py runs end to end and prints one well-formed JSON line per measurement."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_speed_benchmark_prints_every_measurement():
  proc = subprocess.run(
      [sys.executable, "benchmarks/speed.py", "--config=configs/tiny.py",
       "--config.model.depth=1", "--config.model.emim.layers=(0,)",
       "--config.model.text.num_layers=1", "--batch_sequences=1,2", "--frames=2",
       "--frame_size=90,160", "--train_batch=2", "--train_steps=1"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
  for line in lines:
    assert set(line) >= {"name", "value", "unit", "config", "batch_sequences", "device"}
    assert line["value"] >= 0
  names = {(l["name"], l["batch_sequences"]) for l in lines}
  for k in (1, 2):
    assert ("track_frames_per_s", k) in names and ("gflops_per_frame", k) in names
  assert ("track_latency_ms", 1) in names
  for name in ("train_examples_per_s", "gflops_per_train_example", "peak_memory_mb",
               "peak_tflops"):
    assert (name, None) in names
  assert sum(l["name"] == "mfu" for l in lines) == 3  # track K=1, K=2, train
  assert sum(l["name"] == "compile_s" for l in lines) == 3
  flops = {l["batch_sequences"]: l["value"] for l in lines if l["name"] == "gflops_per_frame"}
  assert flops[1] > 0 and abs(flops[2] - flops[1]) / flops[1] < 0.05  # per frame, whatever K
