"""The train step: gradient accumulation equals the full batch; bf16 compute trains without NaN."""

import jax
import jax.numpy as jnp
import numpy as np

from lgtrack_jax.training import setup as setup_lib, sharding
from tests.training.sharded_steps import batch as make_batch


def _one_step(config):
  mesh = sharding.make_mesh(config, jax.devices()[:1])
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  state, step = training.state, training.step
  b = make_batch(config)
  for _ in range(2):  # the first update has lr 0 (warmup): the second one moves the params
    state, metrics = step(state, sharding.global_batch(b, mesh))
  return state, metrics


def test_grad_accumulation_4x2_equals_batch_8(config):
  # In-batch InfoNCE negatives differ by construction between micro-batches of 2 and a batch of
  # 8; every other term is a per-sample mean, so without it the two must agree.
  config.unlock()
  config.loss.contrastive_weight = 0.0
  full_state, full = _one_step(config)
  config.train.grad_accum = 4
  acc_state, acc = _one_step(config)
  for k in ("loss", "focal", "l1", "giou", "grad_norm"):
    np.testing.assert_allclose(acc[k], full[k], rtol=1e-4, err_msg=k)
  # Adam moves every parameter by about lr (1e-3) whatever its gradient's size, so summation
  # order can flip the update of a near-zero gradient: allow a tenth of one step, as on meshes.
  for a, b in zip(jax.tree.leaves(acc_state.params), jax.tree.leaves(full_state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bf16_compute_trains_without_nan(config):
  config.unlock()
  config.model.dtype = "bfloat16"
  config.optim.mu_dtype = "bfloat16"
  state, metrics = _one_step(config)
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  # Master params stay float32; the first Adam moment is stored in bf16.
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype("float32")}
  mu = [x for x in jax.tree.leaves(state.opt_state) if getattr(x, "ndim", 0) > 1]
  assert any(x.dtype == jnp.bfloat16 for x in mu)
