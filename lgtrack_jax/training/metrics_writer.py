"""Scalars to `<workdir>/metrics.jsonl` (one JSON object per log step) and TensorBoard."""

from __future__ import annotations

import json
import os


class MetricsWriter:
  """Writes only on process 0; other hosts get a no-op writer."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    self._tb = SummaryWriter(workdir)

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
