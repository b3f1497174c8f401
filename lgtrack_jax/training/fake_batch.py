"""Random training batches with the pipeline's keys, shapes and dtypes (tests and benchmarks).

Lets the train step run without TensorFlow or data on disk; see input_pipeline/pipeline.py for
the real producer.
"""

from __future__ import annotations

import ml_collections
import numpy as np


def random_batch(config: ml_collections.ConfigDict, n: int, seed: int = 0) -> dict[str, np.ndarray]:
  """n examples: uint8 crops [n, S, S, 3], boxes [n, 4] normalised cxcywh, text ids/mask [n, L]
  int32 (random lengths >= 3), modes [n] int32 cycling through 0, 1, 2, 2 (every init mode)."""
  rng = np.random.default_rng(seed)
  zs, xs, l = config.data.template_size, config.data.search_size, config.model.text.max_len
  mask = (np.arange(l)[None] < rng.integers(3, l, (n, 1))).astype(np.int32)
  return {
      "template": rng.integers(0, 256, (n, zs, zs, 3)).astype(np.uint8),
      "search": rng.integers(0, 256, (n, xs, xs, 3)).astype(np.uint8),
      "template_box": rng.uniform(0.3, 0.7, (n, 4)).astype(np.float32),
      "search_box": rng.uniform(0.2, 0.6, (n, 4)).astype(np.float32),
      "text_ids": (rng.integers(1000, 3000, (n, l)) * mask).astype(np.int32),
      "text_mask": mask,
      "mode": np.array([0, 1, 2, 2, 1, 2, 0, 2], np.int32)[np.arange(n) % 8],
  }
