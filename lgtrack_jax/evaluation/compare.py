"""Compares evaluation runs: a table, and success/precision plots with every run on them.

  python -m lgtrack_jax.evaluation.compare --out runs/demo/eval DIR [DIR ...]

Each DIR holds a `metrics.json` written by eval.py (its curves are stored there).
"""

from __future__ import annotations

import argparse
import json
import os

from lgtrack_jax.evaluation import plots


def load(dirs: list[str]) -> dict[str, dict]:
  """Run name (the tracker; tracker and mode when names clash) -> its metrics.json record."""
  runs = {}
  for d in dirs:
    path = os.path.join(d, "metrics.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"no metrics.json in {d}: run eval.py with --results_dir {d} first")
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
    name = record.get("tracker", d)
    if name in runs:
      name = f"{name} {record.get('mode', '')}".strip()
    if name in runs:
      name = d
    runs[name] = record
  return runs


def table(runs: dict[str, dict]) -> str:
  rows = sorted(runs.items(), key=lambda kv: -kv[1]["auc"])
  width = max(12, *(len(n) for n in runs))
  lines = [f"{'tracker':<{width}} {'AUC':>7} {'P@20':>7} {'NP@0.2':>7}  results"]
  lines += [f"{n:<{width}} {r['auc']:7.2f} {r['precision']:7.2f} {r['norm_precision']:7.2f}  "
            f"{r.get('results_dir', '')}" for n, r in rows]
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dirs", nargs="+", help="results directories with metrics.json")
  parser.add_argument("--out", help="write the joint success/precision plots here")
  args = parser.parse_args()
  runs = load(args.dirs)
  print(table(runs))
  if args.out:
    first = next(iter(runs.values()))
    title = f"{first.get('dataset', '')} {first.get('split', '')}".strip()
    for path in plots.plot_curves(args.out, runs, title):
      print(f"plot: {path}")


if __name__ == "__main__":
  main()
