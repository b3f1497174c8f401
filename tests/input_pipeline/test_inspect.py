"""`python -m input_pipeline.inspect`: counts as the last JSON line, a PNG grid of pairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from input_pipeline import inspect
from tests.input_pipeline import layouts

REPO = Path(__file__).resolve().parents[2]


def _last_json(out: str) -> dict:
  return json.loads(out.strip().splitlines()[-1])


def test_counts_and_grid(tmp_path, capsys):
  rows = layouts.boxes(6)
  rows[2] = 0  # absent
  layouts.write_tnl2k(tmp_path / "test", "bird_1", rows, sentence="the bird on the left")
  layouts.write_tnl2k(tmp_path / "test", "bird_2", n=5)
  png = tmp_path / "grid.png"
  stats = inspect.main(["--dataset", "tnl2k", "--data_root", str(tmp_path), "--split", "test",
                        "--out", str(png), "--pairs", "4", "--config", str(REPO / "configs" /
                                                                         "tiny.py")])
  out = capsys.readouterr().out
  assert _last_json(out) == stats
  assert stats["sequences"] == 2 and stats["frames"] == 11 and stats["absent_frames"] == 1
  assert stats["sample_sentence"] == "the bird on the left"
  assert stats["partial"] and stats["expected_sequences"] == 700 and "PARTIAL" in out
  assert stats["grid"] == str(png)
  with Image.open(png) as im:
    grid = np.asarray(im.convert("RGB"))
  assert grid.shape == (4 * (128 + 28 + 6), 2 * 128 + 12, 3)  # tiny: 128 px search crops
  # The search box is drawn in pure green somewhere in every row.
  green = np.all(grid == (0, 255, 0), axis=-1)
  assert all(green[r * 162:(r + 1) * 162].any() for r in range(4))


def test_no_grid_without_a_trainable_sequence(tmp_path, capsys):
  layouts.write_got10k(tmp_path / "test", "GOT-10k_Test_000001", n=5, test=True)
  stats = inspect.main(["--dataset", "got10k", "--data_root", str(tmp_path), "--split", "test",
                        "--out", str(tmp_path / "g.png")])
  out = capsys.readouterr().out
  assert _last_json(out) == stats and stats["grid"] is None and "no grid" in out
  assert stats["sequences"] == 1 and stats["frames"] == 5 and stats["absent_frames"] == 4
  assert stats["sample_sentence"] is None


def test_command_line(tmp_path):
  layouts.write_lasot(tmp_path, "cat-1", n=4, sentence="a cat", real=False)
  proc = subprocess.run([sys.executable, "-m", "input_pipeline.inspect", "--dataset", "lasot",
                         "--data_root", str(tmp_path), "--split", "test", "--out", ""],
                        cwd=REPO, capture_output=True, text=True, check=True)
  stats = _last_json(proc.stdout)
  assert stats["sequences"] == 1 and stats["frames"] == 4 and stats["sample_sentence"] == "a cat"
  assert stats["partial"] and stats["missing_sequences"] == 279
