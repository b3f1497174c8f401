"""Plots: files written, valid PNGs, legend ordered by score."""

from __future__ import annotations

import numpy as np

from lgtrack_jax.evaluation import metrics, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _summary(seed: int) -> dict:
  rng = np.random.default_rng(seed)
  gt = np.concatenate([rng.uniform(10, 100, (40, 2)), rng.uniform(20, 50, (40, 2))], axis=1)
  pred = gt + rng.normal(0.0, 3.0 * seed, gt.shape)
  return metrics.summarize([metrics.sequence_curves(pred, gt, None)])


def test_order_by_score():
  assert plots.order_by_score({"a": 50.0, "b": 70.0, "c": 60.0}) == ["b", "c", "a"]
  assert plots.order_by_score({"z": 1.0, "y": 1.0, "x": 2.0}) == ["x", "y", "z"]  # ties by name


def test_plot_curves_writes_pngs(tmp_path):
  summaries = {f"tracker{i}": _summary(i) for i in range(1, 4)}
  paths = plots.plot_curves(tmp_path / "plots", summaries, "Synthetic")
  assert [p.rsplit("/", 1)[-1] for p in paths] == [
      "success.png", "precision.png", "norm_precision.png"
  ]
  for p in paths:
    data = open(p, "rb").read()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC


def test_plot_single_tracker(tmp_path):
  paths = plots.plot_curves(tmp_path, {"ours": _summary(1)}, "LaSOT")
  assert len(paths) == 3
