"""Scalars to `<workdir>/metrics.jsonl` (one JSON object per log step) and TensorBoard."""

from __future__ import annotations

import json
import os

from lgtrack_jax import files

FILE = "metrics.jsonl"


def drop_rows_after(path: str, step: int) -> int:
  """Rewrites the jsonl at `path` without its rows whose step is beyond `step`, and without a
  torn last line (a kill mid-write); returns how many rows went. Atomic: written aside, renamed.

  A run killed after logging step s > its last checkpoint c resumes at c and logs c+1 ... again:
  without this, those steps would appear twice.
  """
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  kept = []
  for line in lines:
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(row, dict) and int(row.get("step", step + 1)) <= step:
      kept.append(line)
  dropped = len(lines) - len(kept)
  if dropped:
    files.write_text_atomic(path, "".join(line + "\n" for line in kept))
  return dropped


class MetricsWriter:
  """Writes only on process 0; other hosts get a no-op writer.

  `start_step`: the step the run starts (or resumes) at; rows and TensorBoard events of later
  steps, left by a run killed after its last checkpoint, are dropped, so each step appears once.
  """

  def __init__(self, workdir: str, enabled: bool = True, start_step: int = 0):
    self.enabled = enabled
    self.dropped = 0
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, FILE)
    self.dropped = drop_rows_after(path, start_step)
    self._jsonl = open(path, "a", encoding="utf-8")
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    # TensorBoard hides the earlier events of steps >= purge_step: the same rule for its view.
    self._tb = SummaryWriter(workdir, purge_step=start_step + 1)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), int(step))
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
