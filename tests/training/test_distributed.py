import pytest

from lgtrack_jax.training.distributed import wants_multihost


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"LGTRACK_DISTRIBUTED": "1"}, True),
    ({"LGTRACK_DISTRIBUTED": "0", "SLURM_NTASKS": "8"}, False),
    ({"SLURM_NTASKS": "1"}, False),
    ({"SLURM_NTASKS": "4"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, False),
    ({"TPU_WORKER_HOSTNAMES": "t1v-0,t1v-1"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
])
def test_wants_multihost(env, expected):
  assert wants_multihost(env) == expected


def test_bad_flag_is_an_error():
  with pytest.raises(ValueError, match="LGTRACK_DISTRIBUTED"):
    wants_multihost({"LGTRACK_DISTRIBUTED": "yes"})
