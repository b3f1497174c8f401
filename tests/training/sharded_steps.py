"""Runs three train steps of the micro model on several meshes; prints losses and a params digest.

Executed in a subprocess by test_sharding.py, with 8 simulated CPU devices (XLA_FLAGS must be set
before JAX is imported, hence the separate process).
"""

import json
import sys

import jax
import numpy as np

from lgtrack_jax.models import lgtrack
from lgtrack_jax import checkpoint as ckpt_lib
from lgtrack_jax.training import optim, setup as setup_lib, sharding, state as state_lib
from lgtrack_jax.training.fake_batch import random_batch
from tests.conftest import micro_config


def batch(config, n=8, seed=0):
  return random_batch(config, n, seed)


def mesh_config(data, fsdp, **model):
  config = micro_config()
  config.unlock()
  config.mesh.data, config.mesh.fsdp, config.mesh.fsdp_min_size = data, fsdp, 64
  config.model.update(model)
  return config


def run(data, fsdp, devices, save_to=None, **model):
  config = mesh_config(data, fsdp, **model)
  mesh = sharding.make_mesh(config, devices)
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  state, step = training.state, training.step
  sharded = sum(1 for s in jax.tree.leaves(training.shardings.params) if "fsdp" in str(s.spec))
  losses, grad_norms = [], []
  for i in range(3):
    with jax.set_mesh(mesh):  # as train.py: activation constraints on the batch axes are live
      state, metrics = step(state, sharding.global_batch(batch(config, seed=i), mesh))
    losses.append(float(metrics["loss"]))
    grad_norms.append(float(metrics["grad_norm"]))
  params = np.concatenate([np.asarray(x, np.float32).ravel() for x in jax.tree.leaves(state.params)])
  if save_to:
    ckpt = ckpt_lib.Checkpointer(save_to, async_save=False)
    ckpt.save(3, state, {"step": 3})
    ckpt.close()
  return {"losses": losses, "grad_norms": grad_norms, "sharded_params": sharded}, params


def restore_on(workdir, data, fsdp, devices):
  """Restores a checkpoint onto the (data, fsdp) mesh: flat params, devices holding them."""
  config = mesh_config(data, fsdp)
  mesh = sharding.make_mesh(config, devices)
  model = lgtrack.build_model(config)
  shapes = lgtrack.param_shapes(config)
  tx, _ = optim.make_optimizer(config, shapes)
  abstract = jax.eval_shape(state_lib.init_fn(model, tx, config), jax.random.key(0))
  shardings = state_lib.state_shardings(abstract, mesh, config)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)
  state, meta = ckpt_lib.Checkpointer(workdir, async_save=False).restore(target)
  assert meta["step"] == 3
  devices_used = {d for x in jax.tree.leaves(state.params) for d in x.sharding.device_set}
  return np.concatenate([np.asarray(x, np.float32).ravel()
                         for x in jax.tree.leaves(state.params)]), len(devices_used)


if __name__ == "__main__":
  devs = jax.devices()
  assert len(devs) == 8, devs
  if sys.argv[1] == "bf16":
    # bf16 compute with every CPU speed switch (its custom-VJP products) under fsdp sharding.
    bf16 = {"dtype": "bfloat16", "conv": "matmul", "attention": "matmul"}
    json.dump({"1": run(1, 1, devs[:1], **bf16)[0], "2x4": run(2, 4, devs, **bf16)[0]}, sys.stdout)
    sys.exit(0)
  out, params = {}, {}
  ckpt_2x4, ckpt_8 = sys.argv[2] + "_2x4", sys.argv[2] + "_8"
  for name, (data, fsdp, devices, save_to) in {
      "1": (1, 1, devs[:1], None), "8": (-1, 1, devs, ckpt_8),
      "2x4": (2, 4, devs, ckpt_2x4)}.items():
    out[name], params[name] = run(data, fsdp, devices, save_to=save_to)
  # Checkpoints onto other topologies: 8-way data -> (2, 4) fsdp; (2, 4) -> 1 device, 8-way data,
  # and the way eval.py loads params (first local device).
  params["8_on_2x4"], out["restored_devices_2x4"] = restore_on(ckpt_8, 2, 4, devs)
  params["2x4_on_1"], out["restored_devices_1"] = restore_on(ckpt_2x4, 1, 1, devs[:1])
  params["2x4_on_8"], out["restored_devices_8"] = restore_on(ckpt_2x4, -1, 1, devs)
  loaded, _ = ckpt_lib.load_params(ckpt_2x4, mesh_config(1, 1))
  params["2x4_eval"] = np.concatenate([np.asarray(x, np.float32).ravel()
                                       for x in jax.tree.leaves(loaded)])
  np.savez(sys.argv[1], **params)
  json.dump(out, sys.stdout)
