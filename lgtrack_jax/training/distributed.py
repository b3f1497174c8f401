"""Multi-host start-up: `jax.distributed.initialize()` before any other JAX call, when asked."""

from __future__ import annotations

import os

# Set by Cloud TPU pods, SLURM/MPI launchers, or by hand (LGTRACK_DISTRIBUTED=1).
_MULTIHOST_ENV = ("LGTRACK_DISTRIBUTED", "JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES",
                  "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def maybe_initialize() -> bool:
  """Initialises jax.distributed when the environment describes a multi-process job."""
  wanted = os.environ.get("LGTRACK_DISTRIBUTED")
  if wanted == "0":
    return False
  multi = wanted == "1" or any(
      k in os.environ for k in _MULTIHOST_ENV[1:]
      if not (k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE") and os.environ[k] == "1"))
  if multi:
    import jax  # pylint: disable=import-outside-toplevel
    jax.distributed.initialize()
  return multi
