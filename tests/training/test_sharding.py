"""The sharded train step on 8 simulated CPU devices equals the single-device step, and a
checkpoint written on one topology restores on another."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lgtrack_jax.training import sharding
from tests.conftest import xla_flags_with_cpu_devices

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sharded_steps(*args: str) -> dict:
  """Runs tests/training/sharded_steps.py on 8 simulated CPU devices; its JSON output."""
  env = dict(os.environ, XLA_FLAGS=xla_flags_with_cpu_devices(8), PYTHONPATH=REPO,
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tests/training/sharded_steps.py"),
                         *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_data_and_fsdp_meshes_match_one_device(tmp_path):
  params_file = str(tmp_path / "params.npz")
  out = _sharded_steps(params_file, str(tmp_path / "ckpt"))
  assert out["1"]["sharded_params"] == 0 and out["8"]["sharded_params"] == 0
  assert out["2x4"]["sharded_params"] > 0  # fsdp really shards parameters
  ref = out["1"]
  params = np.load(params_file)
  for name in ("8", "2x4"):
    np.testing.assert_allclose(out[name]["losses"], ref["losses"], rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(out[name]["grad_norms"], ref["grad_norms"], rtol=1e-4,
                               err_msg=name)
    # Adam moves a parameter by about lr (1e-3) whatever the gradient's size, so a reduction
    # order difference on a near-zero gradient can flip one update: allow a tenth of a step.
    np.testing.assert_allclose(params[name], params["1"], rtol=1e-4, atol=1e-4, err_msg=name)
  assert len(ref["losses"]) == 3 and ref["losses"][2] != ref["losses"][1]
  # A checkpoint written by the fsdp-sharded 8-device job restores exactly on other topologies.
  assert out["restored_devices_1"] == 1 and out["restored_devices_8"] == 8
  assert out["restored_devices_2x4"] == 8
  np.testing.assert_array_equal(params["8_on_2x4"], params["8"])
  for name in ("2x4_on_1", "2x4_on_8", "2x4_eval"):
    np.testing.assert_array_equal(params[name], params["2x4"], err_msg=name)


@pytest.mark.slow  # ~60 s: two more compilations of the train step
def test_bf16_with_matmul_switches_on_fsdp_mesh_matches_one_device():
  """bf16 compute with conv/attention as matmuls (custom-VJP products) on the (2, 4) mesh."""
  out = _sharded_steps("bf16")
  assert out["2x4"]["sharded_params"] > 0 and np.all(np.isfinite(out["2x4"]["losses"]))
  np.testing.assert_allclose(out["2x4"]["losses"], out["1"]["losses"], rtol=2e-2)


def test_fsdp_rule_picks_largest_divisible_dimension():
  class FakeMesh:
    shape = {"data": 2, "fsdp": 4}
  spec = sharding._tactic_spec((6, 8, 12), "fsdp", FakeMesh(), 16)  # pylint: disable=protected-access
  assert spec == P(None, None, "fsdp")
  assert sharding._tactic_spec((3, 5), "fsdp", FakeMesh(), 1) == P()  # pylint: disable=protected-access
  assert sharding._tactic_spec((64, 64), "fsdp", FakeMesh(), 10**6) == P()  # pylint: disable=protected-access
  assert sharding._tactic_spec((64,), "replicate", FakeMesh(), 1) == P()  # pylint: disable=protected-access
