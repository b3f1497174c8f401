"""Multi-host start-up: `jax.distributed.initialize()` before any other JAX call, when asked."""

from __future__ import annotations

import os
from typing import Mapping


def wants_multihost(env: Mapping[str, str]) -> bool:
  """Whether the environment describes a multi-process job.

  LGTRACK_DISTRIBUTED=1/0 decides outright; otherwise a coordinator address, a TPU pod's worker
  list (comma-separated, one entry on a single-host TPU VM), or a SLURM/MPI world larger than one.
  """
  flag = env.get("LGTRACK_DISTRIBUTED")
  if flag is not None:
    if flag not in ("0", "1"):
      raise ValueError(f"LGTRACK_DISTRIBUTED={flag!r}: expected 0 or 1")
    return flag == "1"
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return True
  if "," in env.get("TPU_WORKER_HOSTNAMES", ""):
    return True
  return any(int(env.get(k, "1") or "1") > 1 for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))


def initialize_args(env: Mapping[str, str]) -> dict[str, int]:
  """`num_processes` / `process_id` for `jax.distributed.initialize` from JAX_NUM_PROCESSES /
  JAX_PROCESS_ID (the names Orbax's launchers use), where set.

  JAX reads only JAX_COORDINATOR_ADDRESS itself and detects the rest on TPU, SLURM and Open MPI;
  anywhere else (a plain `JAX_COORDINATOR_ADDRESS=... python train.py` per host) these two are
  needed, or initialize() fails with 'Number of processes must be defined'.
  """
  names = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
  return {arg: int(env[name]) for arg, name in names.items() if env.get(name)}


def maybe_initialize() -> bool:
  """Initialises jax.distributed when `wants_multihost(os.environ)`; returns whether it did."""
  if not wants_multihost(os.environ):
    return False
  import jax  # pylint: disable=import-outside-toplevel
  jax.distributed.initialize(**initialize_args(os.environ))
  return True
