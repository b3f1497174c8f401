"""The train step: gradient accumulation equals the full batch; bf16 compute trains without NaN;
candidate elimination warms up in stages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


@pytest.mark.slow  # ~50 s: keeps the default suite clear of 15 minutes
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


def test_candidate_elimination_warmup_stages(config):
  """OSTrack's warm-up: nothing dropped first, then the keep ratio falls stage by stage; each
  stage is a step of its own on the same state, the last one is `training.step`."""
  config.unlock()
  config.model.ce.layers = (1,)
  config.model.ce.keep_ratio = 0.5
  config.train.steps = 300
  stages = setup_lib.ce_stages(config)
  assert [s for s, _ in stages] == [0, 40, 60, 80]
  np.testing.assert_allclose([r for _, r in stages], [1.0, 5 / 6, 2 / 3, 0.5])
  config.model.ce.warmup_end = 0.0
  assert setup_lib.ce_stages(config) == ((0, 0.5),)
  config.model.ce.warmup_start, config.model.ce.warmup_end = 0.5, 0.4
  with pytest.raises(ValueError, match="model.ce.warmup_start=0.5"):
    setup_lib.ce_stages(config)

  config.train.steps = 4
  config.model.ce.warmup_start, config.model.ce.warmup_end = 0.25, 0.75
  config.model.ce.warmup_stages = 2
  assert setup_lib.ce_stages(config) == ((0, 1.0), (2, 0.75), (3, 0.5))
  mesh = sharding.make_mesh(config, jax.devices()[:1])
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  fns = [training.step_at(i) for i in range(4)]
  assert fns[0] is fns[1] and fns[3] is training.step and len({id(f) for f in fns}) == 3
  # Stage 0 keeps every token (the plain model); the last one runs with 8 of the 16 kept.
  _, metrics = training.step_at(3)(training.state, sharding.global_batch(make_batch(config), mesh))
  assert np.isfinite(float(metrics["loss"]))
