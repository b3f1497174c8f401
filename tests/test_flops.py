"""lgtrack_jax/flops.py: FLOP counts from the lowered HLO, from a lowering for the host CPU where
the device's backend cannot count (CUDA), else from the compiled module."""

import jax
import jax.numpy as jnp
import pytest

from lgtrack_jax import flops
from lgtrack_jax.training import setup as setup_lib, sharding
from lgtrack_jax.training.fake_batch import random_batch


class _NoAnalysis:
  """A lowered function as a plugin backend (CUDA) gives it: no cost analysis before compiling."""

  def cost_analysis(self):
    return None


def test_flops_count_falls_back_to_the_host_lowering_then_the_compiled_module():
  a, b = jnp.ones((64, 32)), jnp.ones((32, 16))
  f = jax.jit(lambda x, y: jnp.tanh(x @ y))
  lowered = f.lower(a, b)
  compiled = lowered.compile()
  expected = 2 * 64 * 32 * 16
  assert flops.count_flops(lowered, compiled)[0] >= expected
  hlo, source = flops.count_flops(lowered, compiled)
  assert source == "HLO"
  on_host = flops.count_flops(_NoAnalysis(), compiled,
                              lambda d: f.lower(*flops.shapes_on((a, b), d)))
  assert on_host == (hlo, "HLO lowered for the host CPU")
  count, source = flops.count_flops(_NoAnalysis(), compiled)
  assert source == "compiled HLO (cpu)" and count >= expected


@pytest.mark.slow  # builds a train state and lowers the step twice (18 s)
def test_train_step_flops_on_the_host_equal_the_sharded_steps(config):
  mesh = sharding.make_mesh(config, jax.devices()[:1])
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  batch = sharding.global_batch(random_batch(config, config.train.global_batch), mesh)
  with jax.set_mesh(mesh):
    lowered = training.step.lower(training.state, batch)
  sharded, source = flops.count_flops(lowered, None)
  assert source == "HLO" and sharded > 0
  host = setup_lib.unsharded_step(training, config)
  assert flops.count_flops(_NoAnalysis(), None, lambda d: host.lower(
      *flops.shapes_on((training.state, batch), d))) == (sharded, "HLO lowered for the host CPU")
