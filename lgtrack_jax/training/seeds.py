"""One seed per run, `config.seed`; every random stream of training derives from it.

  init       `jax.random.key(seed)`: the fresh params (JAX's threefry).
  data       `seed`, unless `config.train.seed` overrides it: sample i of the stream comes from
             TensorFlow's stateless Philox keyed by [data, i] (input_pipeline/pipeline.py).
  synthetic  `seed`: the built-in synthetic dataset (numpy's PCG64 keyed by [seed, split, index]).

The derivation is the identity on purpose: the three generators are unrelated, so one integer
gives independent streams, and `--config.seed=S` trains exactly what `--config.seed=S
--config.train.seed=S` trained before `train.seed` became an override (docs/measurements.md's
seed runs reproduce). The model itself draws nothing while training (no dropout).
"""

from __future__ import annotations

import dataclasses

import ml_collections


@dataclasses.dataclass(frozen=True)
class Seeds:
  init: int  # jax.random.key(init) initialises the params
  data: int  # the sample stream's seed
  synthetic: int  # the synthetic dataset's seed


def resolve(config: ml_collections.ConfigDict) -> Seeds:
  """The run's seeds from `config.seed` and the optional `config.train.seed` (None: derived)."""
  seed = int(config.seed)
  data = config.train.seed
  return Seeds(init=seed, data=seed if data is None else int(data), synthetic=seed)
