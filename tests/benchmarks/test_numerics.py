"""benchmarks/numerics.py runs end to end: float32 matches the reference, bf16 is off by bf16
rounding (not more, not zero)."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow  # an opt-in benchmark, like test_training_benchmark (15 s)
def test_numerics_benchmark():
  proc = subprocess.run(
      [sys.executable, "benchmarks/numerics.py", "--config=configs/tiny.py", "--batch=2",
       "--config.model.depth=1", "--config.model.emim.layers=(0,)",
       "--config.model.text.num_layers=1", "--config.model.text.checkpoint=",
       "--variants=float32:flax:xla,bfloat16:matmul:matmul"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = {l["variant"]: l for l in map(json.loads, proc.stdout.splitlines()) if l}
  assert len(lines) == 3 and all(l["ms"] > 0 for l in lines.values())
  f32 = lines["float32:flax:xla"]
  assert f32["finite"] and max(f32["rel_err"].values()) < 1e-5  # CPU: 'default' is float32
  for name in ("bfloat16:matmul:matmul",):
    errs = lines[name]["rel_err"]
    assert lines[name]["finite"] and set(errs) == {"score_logits", "size", "offset", "boxes",
                                                   "vision_tokens", "text_embed"}
    assert 1e-5 < errs["score_logits"] < 5e-2 and errs["vision_tokens"] < 5e-2, errs


def test_malformed_variant_is_a_clear_error_before_any_work():
  proc = subprocess.run([sys.executable, "benchmarks/numerics.py", "--config=configs/tiny.py",
                         "--variants=bfloat16"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode != 0 and "is not DTYPE:ATTENTION:CONV" in proc.stderr
  assert not proc.stdout  # nothing was computed
