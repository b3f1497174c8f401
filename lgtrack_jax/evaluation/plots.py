"""Success, precision and normalised-precision plots of OPE results (DESIGN section 7).

Figures are built with `matplotlib.figure.Figure` and saved through its own Agg canvas, never
through pyplot: no global figure state, no display needed, and the process's backend is left alone.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from matplotlib.figure import Figure

from lgtrack_jax.evaluation import metrics

# (summary curve key, summary score key, file stem, x values, x label, y label, legend tag, title)
_PLOTS = (
    ("success_curve", "auc", "success", metrics.OVERLAP_THRESHOLDS,
     "Overlap threshold", "Success rate [%]", "AUC", "Success plots of OPE"),
    ("precision_curve", "precision", "precision", metrics.CENTER_THRESHOLDS_PX,
     "Location error threshold [pixels]", "Precision [%]", "P@20", "Precision plots of OPE"),
    ("norm_precision_curve", "norm_precision", "norm_precision", metrics.NORM_CENTER_THRESHOLDS,
     "Normalized location error threshold", "Normalized precision [%]", "NP@0.2",
     "Normalized precision plots of OPE"),
)
_LINESTYLES = ("-", "--", ":", "-.")


def order_by_score(scores: Mapping[str, float]) -> list[str]:
  """Names sorted by score, best first, as papers order legends; ties broken by name."""
  return sorted(scores, key=lambda name: (-scores[name], name))


def plot_curves(out_dir: str | os.PathLike, summaries: Mapping[str, dict], title: str) -> list[str]:
  """Writes success.png, precision.png and norm_precision.png for one or more trackers.

  Args:
    out_dir: directory for the images, created if missing.
    summaries: tracker name -> output of `metrics.summarize` (curves and scores in percent).
    title: dataset name shown in the titles, e.g. "LaSOT".
  Returns:
    The three image paths, in the order above.
  """
  if not summaries:
    raise ValueError("plot_curves needs at least one tracker summary")
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  # One style per tracker, kept across the three plots so a tracker is recognisable in each.
  styles = {
      name: (f"C{i % 10}", _LINESTYLES[(i // 10) % len(_LINESTYLES)])
      for i, name in enumerate(sorted(summaries))
  }
  paths = []
  for curve_key, score_key, stem, xs, xlabel, ylabel, tag, plot_title in _PLOTS:
    fig = Figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    scores = {name: float(s[score_key]) for name, s in summaries.items()}
    for name in order_by_score(scores):
      color, linestyle = styles[name]
      ax.plot(xs, np.asarray(summaries[name][curve_key]), color=color, linestyle=linestyle,
              linewidth=2.0, label=f"{name} [{scores[name]:.1f}]")
    ax.set_xlim(float(xs[0]), float(xs[-1]))
    ax.set_ylim(0.0, 100.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{plot_title} on {title} ({tag})")
    ax.grid(True, linestyle=":")
    ax.legend(loc="lower left" if stem == "success" else "lower right", fontsize="small")
    fig.tight_layout()
    path = os.path.join(out_dir, f"{stem}.png")
    fig.savefig(path, dpi=100)
    paths.append(path)
  return paths
