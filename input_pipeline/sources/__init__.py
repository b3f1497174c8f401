"""Dataset readers. `load(name, root, split)` is the single entry point used by training and eval."""

from __future__ import annotations

from input_pipeline.sources.base import DataError, Sequence

# name -> (reader module's load_split, dataset label). The synthetic data uses the LaSOT layout.
_LASOT_LAYOUT = ("lasot", "lasot_ext", "synthetic")


def load(name: str, root: str, split: str, sequences: list[str] | None = None) -> list[Sequence]:
  """All sequences of `split` ('train' | 'test') of dataset `name` stored under `root`."""
  if name in _LASOT_LAYOUT:
    from input_pipeline.sources import lasot  # pylint: disable=import-outside-toplevel
    return lasot.load_split(root, split, dataset=name, sequences=sequences)
  raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_LASOT_LAYOUT)}")


__all__ = ["DataError", "Sequence", "load"]
