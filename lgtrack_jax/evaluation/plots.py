"""Success, precision and normalised-precision plots of OPE results (docs/design.md section 7).

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
  styles = _styles(summaries)
  paths = []
  for curve_key, score_key, stem, xs, xlabel, ylabel, tag, plot_title in _PLOTS:
    series = {name: (np.asarray(s[curve_key]), float(s[score_key]))
              for name, s in summaries.items()}
    path = os.path.join(out_dir, f"{stem}.png")
    _plot(path, xs, series, styles, xlabel, ylabel, f"{plot_title} on {title} ({tag})",
          "lower left" if stem == "success" else "lower right")
    paths.append(path)
  return paths


def _styles(names) -> dict[str, tuple[str, str]]:
  """One (colour, line style) per tracker, by sorted name, so a tracker keeps its look."""
  return {name: (f"C{i % 10}", _LINESTYLES[(i // 10) % len(_LINESTYLES)])
          for i, name in enumerate(sorted(names))}


def _plot(path: str, xs: np.ndarray, series: Mapping[str, tuple[np.ndarray, float]],
          styles: Mapping[str, tuple[str, str]], xlabel: str, ylabel: str, title: str,
          legend_loc: str) -> None:
  """One figure: a curve [len(xs)] in percent per tracker, legend '<name> [score]' best first."""
  fig = Figure(figsize=(6.0, 5.0))
  ax = fig.add_subplot()
  for name in order_by_score({n: score for n, (_, score) in series.items()}):
    curve, score = series[name]
    color, linestyle = styles[name]
    ax.plot(xs, curve, color=color, linestyle=linestyle, linewidth=2.0,
            label=f"{name} [{score:.1f}]")
  ax.set_xlim(float(xs[0]), float(xs[-1]))
  ax.set_ylim(0.0, 100.0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, linestyle=":")
  ax.legend(loc=legend_loc, fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def plot_got10k(out_dir: str | os.PathLike, summaries: Mapping[str, dict], title: str) -> list[str]:
  """GOT-10k's success plot (101 thresholds, legend by AO): `got10k_metrics.summarize` outputs."""
  from lgtrack_jax.evaluation import got10k_metrics  # pylint: disable=import-outside-toplevel
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "success.png")
  series = {n: (np.asarray(s["success_curve"]), float(s["ao"])) for n, s in summaries.items()}
  _plot(path, got10k_metrics.SUCCESS_THRESHOLDS, series, _styles(summaries), "Overlap threshold",
        "Success rate [%]", f"Success plot on {title} (AO)", "lower left")
  return [path]


def plot_attributes(out_dir: str | os.PathLike, per_attribute: Mapping[str, Mapping[str, dict]],
                    title: str) -> str:
  """attributes.png: success AUC per attribute (bars), one bar per tracker, trackers ordered by
  their mean over attributes. per_attribute: tracker -> attributes.per_attribute output."""
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  names = sorted({a for per in per_attribute.values() for a in per})
  trackers = order_by_score({t: float(np.mean([p["auc"] for p in per.values()] or [0.0]))
                             for t, per in per_attribute.items()})
  styles = _styles(per_attribute)
  fig = Figure(figsize=(max(6.0, 0.6 * len(names) * max(1, len(trackers)) ** 0.5), 5.0))
  ax = fig.add_subplot()
  width = 0.8 / max(1, len(trackers))
  x = np.arange(len(names))
  for k, t in enumerate(trackers):
    per = per_attribute[t]
    ax.bar(x + k * width, [per[a]["auc"] if a in per else 0.0 for a in names], width,
           color=styles[t][0], label=t)
  ax.set_xticks(x + width * (len(trackers) - 1) / 2)
  ax.set_xticklabels([f"{a} ({next(p[a]['num_sequences'] for p in per_attribute.values() if a in p)})"
                      for a in names], rotation=45, ha="right", fontsize="small")
  ax.set_ylim(0.0, 100.0)
  ax.set_ylabel("Success AUC [%]")
  ax.set_title(f"Success AUC per attribute on {title}")
  ax.grid(True, axis="y", linestyle=":")
  ax.legend(fontsize="small")
  fig.tight_layout()
  path = os.path.join(out_dir, "attributes.png")
  fig.savefig(path, dpi=100)
  return path
