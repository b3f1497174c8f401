"""Orbax checkpoints of a train workdir: atomic (written to a temp dir, renamed when complete),
async, keep-N.

Each checkpoint holds the TrainState and a JSON record with the data position, so that the same
command resumes the exact sample stream: sample index = step * global_batch. Training writes and
resumes them (`Checkpointer`); evaluation and tracking read their params (`load_params`), so this
module sits below both, beside the models it restores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath


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


def latest_step(workdir: str) -> int | None:
  """The newest finished step under `<workdir>/checkpoints` (the one `load_params` restores;
  Orbax names unfinished ones `<step>.orbax-checkpoint-tmp-*`), or None. Creates nothing."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return None
  return max((int(e) for e in os.listdir(directory)
              if e.isdigit() and os.path.isdir(os.path.join(directory, e))), default=None)


def check_params(workdir: str, config: ml_collections.ConfigDict, listed: int = 4) -> int:
  """Checks, before anything is restored, that the params of a train workdir's latest
  checkpoint have the shapes `config`'s model needs; returns that step.

  The checkpoint's shapes come from its Orbax metadata (no array is read), the model's from
  `jax.eval_shape` of its init. A checkpoint of another config is a ValueError naming the first
  `listed` differing params, 'path: checkpoint (a, b) vs config (c, d)' ('absent' on the side
  lacking one), instead of a restore failing deep inside Orbax.
  """
  from lgtrack_jax.weights import vit as vit_lib  # pylint: disable=import-outside-toplevel
  step = latest_step(workdir)
  if step is None:
    raise FileNotFoundError(f"no checkpoint under {os.path.join(workdir, 'checkpoints')}: is "
                            f"{workdir!r} a train workdir?")
  state_dir = os.path.join(os.path.abspath(workdir), "checkpoints", str(step), "state")
  try:
    tree = ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir))
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f"checkpoint {state_dir}: unreadable metadata ({e})") from None
  params = getattr(tree, "tree", tree).get("params")
  if not isinstance(params, Mapping):
    raise ValueError(f"checkpoint {state_dir} holds no params")
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  stored = {"/".join(str(getattr(k, "key", k)) for k in path): tuple(getattr(m, "shape", ()))
            for path, m in leaves}
  wanted = vit_lib.model_param_shapes(config)
  differ = [f"{p}: checkpoint {stored.get(p, 'absent')} vs config {wanted.get(p, 'absent')}"
            for p in sorted(set(stored) | set(wanted)) if stored.get(p) != wanted.get(p)]
  if differ:
    more = f" and {len(differ) - listed} more" if len(differ) > listed else ""
    raise ValueError(f"checkpoint {state_dir} was trained with another config: "
                     f"{len(differ)} params differ from the config's model ("
                     + "; ".join(differ[:listed]) + f"{more}); evaluate it with its own config")
  return step


def load_params(workdir: str, config: ml_collections.ConfigDict) -> tuple[Any, int]:
  """The latest params of a train workdir for `config`'s model, on the first local device.

  Works whatever mesh wrote the checkpoint (Orbax reshards to the target sharding). A checkpoint
  of another config is a one-line ValueError before any restore (`check_params`).
  """
  from lgtrack_jax.models import lgtrack  # pylint: disable=import-outside-toplevel
  check_params(workdir, config)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      lgtrack.param_shapes(config))
  return restore_params(workdir, abstract)
