"""Dataset readers. `load(name, root, split)` is the single entry point of training and eval.

Each dataset format is parsed in one module (`lasot`, `tnl2k`, `otb99_lang`, `got10k`,
`trackingnet`, `refcocog`); `scan` adds what they share: the sequence selection, the on-disk index
cache (`index_cache`) and the report of a partial download. Plain Python + numpy + Pillow; only
the RefCOCOg reader imports TensorFlow (Datasets), lazily, and only to convert the TFDS data once.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable

from absl import logging

from input_pipeline.sources import index_cache
from input_pipeline.sources.base import DataError, Sequence, select

# dataset name -> the module parsing its layout. The synthetic data uses the LaSOT layout.
READERS = {
    "lasot": "lasot",
    "lasot_ext": "lasot",
    "synthetic": "lasot",
    "tnl2k": "tnl2k",
    "otb99_lang": "otb99_lang",
    "got10k": "got10k",
    "trackingnet": "trackingnet",
    "refcocog": "refcocog",
}
# Datasets of single annotated images (grounding, mode 1) rather than videos.
IMAGE_DATASETS = frozenset({"refcocog"})


@dataclasses.dataclass(frozen=True)
class Split:
  """The sequences of one split, and what is missing from it.

  Attributes:
    dataset, root, split: what was read.
    sequences: the sequences on disk (the requested ones when a selection was given), in split
      order.
    found: how many sequences of the split are on disk (all of them, whatever was selected).
    missing: names of the split that are not on disk (a partial download), in split order.
    expected: the size of the complete split when it is known, else None.
    missing_parts: absent parts of the download whose sequence names are unknown (e.g. a
      TrackingNet chunk).
    cached: how many sequences came from the index cache rather than a fresh parse.
  """

  dataset: str
  root: str
  split: str
  sequences: list[Sequence]
  found: int
  missing: tuple[str, ...] = ()
  expected: int | None = None
  missing_parts: tuple[str, ...] = ()
  cached: int = 0

  @property
  def partial(self) -> bool:
    """True when part of the split is not on disk (a partial download)."""
    short = self.expected is not None and self.found < self.expected
    return bool(self.missing or self.missing_parts or short)

  def describe_partial(self) -> str:
    """One line saying what is missing ('' when the split is complete)."""
    if not self.partial:
      return ""
    total = self.expected if self.expected is not None else self.found + len(self.missing)
    parts = [f"{self.dataset} {self.split}: {self.found} of {total} sequences on disk under "
             f"{self.root} (partial download)"]
    if self.missing:
      more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
      parts.append(f"missing {', '.join(self.missing[:5])}{more}")
    if self.missing_parts:
      parts.append(f"missing parts {', '.join(self.missing_parts)}")
    return "; ".join(parts)


def _reader(name: str):
  if name not in READERS:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(READERS)}")
  return importlib.import_module(f"input_pipeline.sources.{READERS[name]}")


def scan(name: str, root: str, split: str, sequences: Iterable[str] | None = None, *,
         cache: bool = True, cache_dir: str | None = None, frames_required: bool = True) -> Split:
  """Reads `split` of dataset `name` under `root`, through the index cache.

  Args:
    name: a key of READERS.
    root: the dataset root, in the dataset's own layout (see each reader's docstring).
    split: the dataset's split name ("train", "test", GOT-10k's "val", ...).
    sequences: only these names (a name outside the split, or not on disk, is a DataError).
    cache: use and update the index cache; False parses every file.
    cache_dir: where to keep the cache instead of next to the data.
    frames_required: False reads the ground truth of sequences whose frames are not on disk
      (scoring needs only annotations and result files): they get `frames=()` and are not
      cached. Video readers only (RefCOCOg's images always load).

  Returns:
    The `Split`. A partial download is logged as a warning and listed in `Split.missing`.
  """
  reader = _reader(name)
  if hasattr(reader, "scan"):  # readers converting a whole dataset at once (RefCOCOg)
    result = reader.scan(root, split, dataset=name, sequences=sequences, cache=cache,
                         cache_dir=cache_dir)
  else:
    result = _scan_listing(reader, name, root, split, sequences, cache, cache_dir,
                           frames_required)
  if result.partial:
    logging.warning("%s", result.describe_partial())
  return result


def _scan_listing(reader, name: str, root: str, split: str, sequences: Iterable[str] | None,
                  cache: bool, cache_dir: str | None, frames_required: bool = True) -> Split:
  listing = reader.list_split(root, split, dataset=name)
  refs = select(listing, sequences, name, split, root)
  path = index_cache.cache_path(root, name, split, cache_dir)
  cached = index_cache.load(path, root, name, split) if cache else {}
  out, records, reused, changed = [], dict(cached), 0, False
  for ref in refs:
    sig, newest = index_cache.signature(ref.deps)
    hit = cached.get(ref.name)
    if hit is not None and hit[0] == sig:
      out.append(hit[1])
      reused += 1
      continue
    seq = reader.read(ref, dataset=name, frames_required=frames_required)
    out.append(seq)
    # A sequence read without its frames is never cached: a run that needs them parses again.
    if index_cache.is_settled(newest) and seq.has_frames:
      records[ref.name] = (sig, seq)
      changed = True
    elif ref.name in records:
      del records[ref.name]
      changed = True
  if cache and changed:
    index_cache.save(path, root, name, split, list(records.values()))
  if cache:
    logging.info("%s %s: %d sequences, %d from the index cache %s", name, split, len(out), reused,
                 path)
  return Split(name, root, split, out, found=len(listing.refs), missing=tuple(listing.missing),
               expected=listing.expected, missing_parts=tuple(listing.missing_parts),
               cached=reused)


def load(name: str, root: str, split: str, sequences: Iterable[str] | None = None, *,
         cache: bool = True, cache_dir: str | None = None,
         frames_required: bool = True) -> list[Sequence]:
  """The sequences of `split` of dataset `name` under `root` (see `scan`)."""
  return scan(name, root, split, sequences, cache=cache, cache_dir=cache_dir,
              frames_required=frames_required).sequences


__all__ = ["DataError", "IMAGE_DATASETS", "READERS", "Sequence", "Split", "load", "scan"]
