"""One of two JAX processes of test_multiprocess.py: three train steps of the micro model on a
(data 2, fsdp 4) mesh over the 2 processes' 8 devices, this process feeding only its slice of
each global batch.

  python multiprocess_worker.py COORDINATOR PROCESS_ID OUT_PREFIX

Run with 4 simulated CPU devices per process (XLA_FLAGS=--xla_force_host_platform_device_count=4,
set before JAX is imported). Every process prints one JSON line (losses, grad norms);
process 0 also saves the gathered params to OUT_PREFIX.npz, process 1 writes nothing.
"""

import json
import sys

import jax

# Cross-process CPU collectives (gloo is jax 0.10's default; explicit, since without it the
# jitted step cannot reduce across processes).
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2,
                           process_id=int(sys.argv[2]), initialization_timeout=120)

# pylint: disable=wrong-import-position
import numpy as np
from jax.experimental import multihost_utils

from input_pipeline import sampler
from lgtrack_jax.training import setup as setup_lib, sharding
from tests.training.sharded_steps import batch, mesh_config

GLOBAL_BATCH = 8


def local_slice(full: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
  """This host's rows of a global batch, the rows the input pipeline gives it
  (`sampler.host_sample_indices`: host p of P takes samples p, p + P, p + 2P, ...)."""
  count = jax.process_count()
  rows = sampler.host_sample_indices(step, jax.process_index(), count, GLOBAL_BATCH // count)
  rows = rows - step * GLOBAL_BATCH  # position in this step's global batch
  return {k: v[rows] for k, v in full.items()}


def run(data: int, fsdp: int) -> tuple[dict, np.ndarray]:
  """Three steps on the (data, fsdp) mesh over all 8 global devices (as sharded_steps.run)."""
  config = mesh_config(data, fsdp)
  mesh = sharding.make_mesh(config)
  owners = [{d.process_index for d in row} for row in mesh.devices]
  out = {"mesh_rows_processes": [sorted(o) for o in owners]}
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  state, step = training.state, training.step
  sharded = sum(1 for s in jax.tree.leaves(training.shardings.params) if "fsdp" in str(s.spec))
  losses, grad_norms = [], []
  for i in range(3):
    local = local_slice(batch(config, n=GLOBAL_BATCH, seed=i), i)
    assert len(local["search"]) == GLOBAL_BATCH // jax.process_count()
    with jax.set_mesh(mesh):
      state, metrics = step(state, sharding.global_batch(local, mesh))
    # Metrics are replicated: every process reads the same value from its own devices.
    losses.append(float(metrics["loss"]))
    grad_norms.append(float(metrics["grad_norm"]))
  # fsdp params are spread over both processes' devices: gather them everywhere.
  leaves = multihost_utils.process_allgather(state.params, tiled=True)
  params = np.concatenate([np.asarray(x, np.float32).ravel() for x in jax.tree.leaves(leaves)])
  return dict(out, losses=losses, grad_norms=grad_norms, sharded_params=sharded), params


def main():
  assert jax.process_count() == 2 and jax.device_count() == 8 and jax.local_device_count() == 4
  out, params = {"process_index": jax.process_index()}, {}
  # (data 2, fsdp 4): make_mesh keeps each process's 4 devices together, so the data axis spans
  # the processes and fsdp shards params inside each. (8-way data alone is train.py's default,
  # run by the slow train.py test; a second mesh here would double the compile time.)
  out["2x4"], params["2x4"] = run(2, 4)
  if jax.process_index() == 0:
    np.savez(sys.argv[3] + ".npz", **params)
  multihost_utils.sync_global_devices("worker done")
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
