"""Prints a table of several evaluation runs: `python -m lgtrack_jax.evaluation.compare DIR...`.

Each DIR holds a `metrics.json` written by eval.py.
"""

from __future__ import annotations

import json
import os
import sys


def table(dirs: list[str]) -> str:
  rows = []
  for d in dirs:
    path = os.path.join(d, "metrics.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"no metrics.json in {d}: run eval.py with --results_dir {d} first")
    with open(path, encoding="utf-8") as f:
      m = json.load(f)
    rows.append((m.get("tracker", d), m["auc"], m["precision"], m["norm_precision"], d))
  rows.sort(key=lambda r: -r[1])
  lines = [f"{'tracker':<12} {'AUC':>7} {'P@20':>7} {'NP@0.2':>7}  results"]
  lines += [f"{n:<12} {a:7.2f} {p:7.2f} {np_:7.2f}  {d}" for n, a, p, np_, d in rows]
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if not argv:
    raise SystemExit("usage: python -m lgtrack_jax.evaluation.compare RESULTS_DIR [RESULTS_DIR ...]")
  print(table(argv))
  for d in argv:
    print(f"plots: {os.path.join(d, 'success.png')}, {os.path.join(d, 'precision.png')}")


if __name__ == "__main__":
  main(sys.argv[1:])
