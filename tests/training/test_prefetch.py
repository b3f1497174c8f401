"""prefetch_to_device: same batches, same order, put on the device `size` steps ahead."""

import jax
import numpy as np

from lgtrack_jax.training import sharding
from tests.conftest import micro_config


def test_prefetch_keeps_order_and_runs_ahead():
  mesh = sharding.make_mesh(micro_config(), jax.devices()[:1])
  pulled = []

  def local():
    for i in range(5):
      pulled.append(i)
      yield {"x": np.full((2, 3), i, np.float32)}

  it = sharding.prefetch_to_device(local(), mesh, size=2)
  first = next(it)
  assert isinstance(first["x"], jax.Array) and pulled == [0, 1, 2]  # two batches in flight
  rest = [int(b["x"][0, 0]) for b in it]
  assert [int(first["x"][0, 0])] + rest == [0, 1, 2, 3, 4]
