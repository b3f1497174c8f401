"""The training mixture of `config.data.train`: which sources, read and indexed once.

`config.data.train = ((name, root, ratio, split), ...)`: sample i of the stream picks source k with
probability ratio_k / sum(ratios) from its own stateless draw (`pipeline.py`), so resuming and
per-host splitting stay exact for any mixture. An empty tuple means the single source
`(data.name, data.root, 1.0, data.split)`. Plain Python + numpy (no TensorFlow).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from absl import logging

from input_pipeline import sampler, sources


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """One entry of the mixture: dataset `name` under `root`, weight `ratio`, split `split`."""

  name: str
  root: str
  ratio: float
  split: str


def train_sources(data: Any) -> list[SourceSpec]:
  """The validated mixture of a `config.data` block (see the module docstring).

  A relative root is joined to `data.root`; an empty one is `data.root`. Sources of ratio 0 are
  kept in the list (they are skipped when indexing).
  """
  if not tuple(data.train):  # the single source, its root taken as it is (relative to the cwd)
    if data.name not in sources.READERS:
      raise ValueError(f"config.data.name: unknown dataset {data.name!r}; known: "
                       f"{', '.join(sources.READERS)}")
    if not data.root:
      raise ValueError(f"config.data.root: no root for dataset {data.name!r}")
    return [SourceSpec(str(data.name), str(data.root), 1.0, str(data.split))]
  specs = []
  for k, entry in enumerate(tuple(data.train)):
    if not isinstance(entry, (tuple, list)) or len(entry) != 4:
      raise ValueError(f"config.data.train[{k}] = {entry!r}: expected (name, root, ratio, split)")
    name, root, ratio, split = entry
    if name not in sources.READERS:
      raise ValueError(f"config.data.train[{k}]: unknown dataset {name!r}; known: "
                       f"{', '.join(sources.READERS)}")
    try:
      ratio = float(ratio)
    except (TypeError, ValueError):
      raise ValueError(f"config.data.train[{k}]: ratio {ratio!r} is not a number") from None
    if not math.isfinite(ratio) or ratio < 0:
      raise ValueError(f"config.data.train[{k}]: ratio must be finite and >= 0, got {ratio}")
    root = str(root)
    if not root:
      root = data.root
    elif not os.path.isabs(root) and data.root:
      root = os.path.join(data.root, root)
    if not root:
      raise ValueError(f"config.data.train[{k}] ({name}): no root (set it, or config.data.root)")
    specs.append(SourceSpec(str(name), root, ratio, str(split)))
  if not any(s.ratio > 0 for s in specs):
    raise ValueError("config.data.train: every ratio is 0")
  return specs


def build_index(config: Any, tokenize: sampler.TokenizeFn) -> sampler.Index:
  """Reads every source of the mixture (through the index cache) and merges their indexes.

  Args:
    config: the full config; reads `config.data.*` and `config.model.text.max_len`.
    tokenize: sentences -> (ids, mask), as for `sampler.build_index`.

  Returns:
    The mixture's `sampler.Index`; a partial download of any source is logged (`sources.scan`).
  """
  d = config.data
  parts = []
  for spec in train_sources(d):
    if spec.ratio == 0:
      continue
    split = sources.scan(spec.name, spec.root, spec.split, cache=d.index_cache,
                         cache_dir=d.cache_dir or None)
    index = sampler.build_index(split.sequences, tokenize, config.model.text.max_len,
                                grounding=spec.name in sources.IMAGE_DATASETS)
    logging.info("source %s (%s, %s): %d sequences, %d frames, ratio %g", spec.name, spec.root,
                 spec.split, index.num_sequences, len(index.frame_paths), spec.ratio)
    parts.append((index, spec.ratio))
  return parts[0][0] if len(parts) == 1 else sampler.merge(parts)
