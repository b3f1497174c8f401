"""Orbax checkpoints: atomic (written to a temp dir, renamed when complete), async, keep-N.

Each checkpoint holds the TrainState and a JSON record with the data position, so that the same
command resumes the exact sample stream: sample index = step * global_batch.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """`<workdir>/checkpoints/<step>/{state,meta}`."""

  def __init__(self, workdir: str, keep: int = 3, async_save: bool = True):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=async_save),
        item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, meta: dict, force: bool = False) -> bool:
    return self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)

  def meta(self, step: int) -> dict:
    """The JSON record of checkpoint `step` alone (cheap: the state is not read)."""
    return dict(self.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta)

  def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores into `target`'s structure and shardings (arrays or ShapeDtypeStructs)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out.state, out.meta

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def restore_params(workdir: str, target_params: Any) -> tuple[Any, int]:
  """Params only, from a train workdir's latest checkpoint (evaluation, `init_from`)."""
  ckpt = Checkpointer(workdir, async_save=False)
  step = ckpt.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint under {ckpt.directory}: is {workdir!r} a train workdir?")
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      target_params)
  out = ckpt.manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(
          {"params": abstract},
          restore_args=ocp.checkpoint_utils.construct_restore_args({"params": abstract}),
          partial_restore=True)))
  ckpt.close()
  return out.state["params"], step


def load_params(workdir: str, config) -> tuple[Any, int]:
  """The latest params of a train workdir for `config`'s model, on the first local device.

  Works whatever mesh wrote the checkpoint (Orbax reshards to the target sharding).
  """
  from lgtrack_jax.models import lgtrack  # pylint: disable=import-outside-toplevel
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  model = lgtrack.build_model(config)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(model.init, jax.random.key(0), **lgtrack.dummy_inputs(config))["params"])
  return restore_params(workdir, abstract)
