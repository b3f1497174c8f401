"""benchmarks/input_pipeline.py runs end to end on a tiny setting (slow: opt-in)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
  pytest.importorskip("tensorflow")
  spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" /
                                                "input_pipeline.py")
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  result = bench.main(["--threads", "1", "--batch", "4", "--batches", "2", "--sequences", "1",
                       "--frames", "4", "--workdir", str(tmp_path)])
  assert result["samples_per_s"] > 0 and result["samples_per_s_per_core"] > 0
  assert result["frame"] == "1280x720" and set(result["mixture"]) == {"lasot", "tnl2k", "got10k"}
