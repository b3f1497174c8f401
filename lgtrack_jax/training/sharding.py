"""Device mesh, regex sharding rules for params/optimizer state, and global batches.

The same code runs on 1 CPU, 8 simulated CPU devices, a GPU host and a multi-host TPU pod:
params and optimizer state follow `config.mesh.param_rules`; the batch is split over every mesh
axis (data and fsdp both consume batch); each host feeds only its slice.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lgtrack_jax.ops.partition import BATCH_AXES as AXES

BATCH_SPEC = P(AXES)


def make_mesh(config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """Mesh ('data', 'fsdp') from `config.mesh` sizes; -1 takes all remaining devices."""
  devices = jax.devices() if devices is None else devices
  n = len(devices)
  data, fsdp = config.mesh.data, config.mesh.fsdp
  if data == -1 and fsdp == -1:
    raise ValueError("mesh.data and mesh.fsdp cannot both be -1")
  if data == -1:
    data = n // fsdp
  if fsdp == -1:
    fsdp = n // data
  if data * fsdp != n:
    raise ValueError(f"mesh data={config.mesh.data} x fsdp={config.mesh.fsdp} does not cover "
                     f"the {n} devices")
  return jax.make_mesh((data, fsdp), AXES, devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def _tactic_spec(shape: tuple[int, ...], tactic: str, mesh: Mesh, min_size: int) -> P:
  if tactic == "replicate":
    return P()
  if tactic == "fsdp":
    n = mesh.shape["fsdp"]
    if n == 1 or int(np.prod(shape)) < min_size:
      return P()
    for dim in np.argsort(shape)[::-1]:  # largest divisible dimension
      if shape[dim] % n == 0:
        spec = [None] * len(shape)
        spec[dim] = "fsdp"
        return P(*spec)
    return P()
  raise ValueError(f"unknown sharding tactic {tactic!r}: expected 'replicate' or 'fsdp'")


def tree_shardings(tree, mesh: Mesh, config: ml_collections.ConfigDict):
  """NamedSharding per leaf of `tree` (arrays or ShapeDtypeStructs) by the ordered regex rules."""
  rules = [(re.compile(pattern), tactic) for pattern, tactic in config.mesh.param_rules]

  def one(path, leaf):
    name = "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)
    shape = tuple(getattr(leaf, "shape", ()))
    for pattern, tactic in rules:
      if pattern.search(name):
        return NamedSharding(mesh, _tactic_spec(shape, tactic, mesh, config.mesh.fsdp_min_size))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(one, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, BATCH_SPEC)


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's slice of the batch -> global jax.Arrays split over every mesh axis."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def prefetch_to_device(local_batches: Iterator[dict[str, np.ndarray]], mesh: Mesh,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Yields `global_batch`es `size` steps ahead of their use: the host-to-device copies of the
  next batches are issued while the device still runs the current step."""
  queue = collections.deque(global_batch(b, mesh) for b in itertools.islice(local_batches, size))
  while queue:
    current = queue.popleft()
    nxt = next(local_batches, None)  # refill first: `size` batches stay in flight during the step
    if nxt is not None:
      queue.append(global_batch(nxt, mesh))
    yield current
