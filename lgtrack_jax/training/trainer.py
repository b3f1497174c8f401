"""The training loop behind `train.py`: data, sharded state, jitted step, checkpoints, logging.

Resuming: the same command restarts from the latest checkpoint; sample i of the stream is a pure
function of (seed, i), so step s continues at sample s * global_batch on any host count. The
run's config is recorded in `<workdir>/config.json` at its start, and a resumed run must use
the same one (`config_record`); `metrics.jsonl` loses the rows of steps past the checkpoint.

Non-finite values: every step returns an on-device `all_finite` flag; the flags are read before
each save and on log steps (where the host waits for the device anyway), so no non-finite state
is ever saved and the error names the first bad step and the last checkpoint saved before it.

Preemption: SIGTERM saves and exits, at a step every process agrees on (`_Preemption`).
"""

from __future__ import annotations

import json
import os
import signal
import time

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from lgtrack_jax import checkpoint as ckpt_lib
from lgtrack_jax import config_io
from lgtrack_jax.training import config_record
from lgtrack_jax.training import metrics_writer
from lgtrack_jax.training import seeds as seeds_lib
from lgtrack_jax.training import setup as setup_lib
from lgtrack_jax.training import sharding as sharding_lib
from lgtrack_jax.training import step as step_lib
from lgtrack_jax.training.errors import ConfigError, NonFiniteError


def ensure_synthetic_data(config: ml_collections.ConfigDict) -> None:
  """Generates the built-in synthetic dataset at each synthetic source's root when incomplete."""
  from input_pipeline import mixture  # pylint: disable=import-outside-toplevel
  roots = [s.root for s in mixture.train_sources(config.data)
           if s.name == "synthetic" and not os.path.exists(os.path.join(s.root, "COMPLETE"))]
  if not roots:
    return
  from input_pipeline import synthetic  # pylint: disable=import-outside-toplevel
  if jax.process_index() == 0:
    for root in dict.fromkeys(roots):
      logging.info("generating synthetic data in %s", root)
      synthetic.generate(root, num_train=config.data.synthetic_train,
                         num_test=config.data.synthetic_test,
                         num_frames=config.data.synthetic_frames,
                         seed=seeds_lib.resolve(config).synthetic)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("synthetic_data")


def load_pretrained_params(config: ml_collections.ConfigDict, params: dict, workdir: str) -> dict:
  """Replaces fresh params by `model.init.{vit,tracker,text}` / `model.text.checkpoint`.

  Same shardings and dtypes as `params`. Process 0 logs what was loaded, newly initialised and
  ignored, and writes it all to `<workdir>/init_report.json`.
  """
  from lgtrack_jax.weights import pretrained  # pylint: disable=import-outside-toplevel
  params, report = pretrained.apply_pretrained(config, params)
  if jax.process_index() == 0:
    logging.info("%s", "\n".join(report.lines()))
    from etils import epath  # pylint: disable=import-outside-toplevel
    (epath.Path(workdir) / "init_report.json").write_text(
        json.dumps(report.to_json(), indent=1, sort_keys=True))
  return params


def build_index(config: ml_collections.ConfigDict):
  """Reads the training mixture (`config.data.train`) and builds its sampling index (sentences
  tokenised once)."""
  from input_pipeline import mixture  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  tokenizer = Tokenizer(config.model.text.tokenizer or config.model.text.checkpoint,
                        config.model.text.max_len)
  return mixture.build_index(config, tokenizer)


class _Preemption:
  """SIGTERM -> save and exit, at a step every process agrees on.

  One process: a Python SIGTERM handler sets a flag, read after every step.

  Several processes: no process may save a step another did not reach (Orbax saves
  collectively), yet SIGTERM may reach only some of them. JAX's preemption sync manager, started
  by `jax.distributed.initialize`, catches SIGTERM in whichever process gets it and tells the
  others through the coordination service; `multihost_utils.reached_preemption_sync_point(n)`
  then turns true on every process at the same n (the fastest process's n + 1). It is called
  after every step and costs a lock and a compare until a notice arrives. A Python handler
  would take SIGTERM from it, so none is installed. n is the absolute step, as Orbax passes it
  when it saves; the manager's counter starts at 0, so `_arm_preemption_sync` sets it to the
  start step as soon as that is known (else a notice before the first step of a resumed run
  would name step 1, never reached). A notice before that (a second or so after start-up) or
  while Orbax's save thread sets the counter back is not acted on: that process then exits at
  the grace period's end without a save, as without this class, but never with a torn one.

  Where the preemption service is off (`jax_enable_preemption_service=False`), each process
  keeps its own flag and they agree by an all-gather of it on log and checkpoint steps, where
  the host waits for the device anyway: a tiny collective every `log_every` steps, but the exit
  comes up to `log_every` steps later.
  """

  def __init__(self, sync_manager: bool):
    """`sync_manager`: what `_arm_preemption_sync` returned (JAX's sync manager is on)."""
    self.requested = False
    self._previous = None
    self._sync_manager = sync_manager
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      self._multihost = multihost_utils
    if not sync_manager:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.requested = True

  def reached(self, step: int, host_synced: bool) -> bool:
    """Whether every process saves and exits after `step` (call on every process, every step).

    host_synced: this step reads the device anyway (a log or checkpoint step, the same on every
    process); only there does the fallback all-gather run.
    """
    if self._sync_manager:
      return self._multihost.reached_preemption_sync_point(step)
    if jax.process_count() == 1:
      return self.requested
    if not host_synced:
      return False
    return bool(np.max(self._multihost.process_allgather(np.int32(self.requested))))

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _arm_preemption_sync(start_step: int) -> bool:
  """Sets JAX's preemption counter to the step a multi-process run starts at (see
  `_Preemption`); returns whether JAX's preemption sync manager is on (False with one process,
  without `jax.distributed`, or with the preemption service off)."""
  if jax.process_count() == 1:
    return False
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  try:
    if not jax.distributed.is_initialized():  # no coordination service: no sync manager
      raise RuntimeError("jax.distributed is not initialised")
    multihost_utils.reached_preemption_sync_point(start_step)  # raises when off
    return True
  except RuntimeError as e:
    logging.warning("no JAX preemption sync (%s): SIGTERM is agreed on at log and checkpoint "
                    "steps only", e)
    return False


def _check_finite(pending: list[tuple[int, dict]], last_finite: int | None,
                  directory: str) -> None:
  """Raises NonFiniteError at the first of `pending`'s (step, metrics) whose `all_finite` is off.

  One device read of the pending flags ([] bool each, computed by the jitted step); a bad step's
  other metrics are read only to say what went wrong.
  """
  flags = jax.device_get([m[step_lib.FINITE] for _, m in pending])
  for (step, metrics), ok in zip(pending, flags):
    if ok:
      continue
    terms = {k: float(v) for k, v in jax.device_get(metrics).items() if k != step_lib.FINITE}
    what = ", ".join(f"{k} {terms[k]:.4g}" for k in ("loss", "grad_norm", "param_norm"))
    others = sorted(k for k, v in terms.items() if not np.isfinite(v)
                    and k not in ("loss", "grad_norm", "param_norm"))
    where = (f"the last finite checkpoint is step {last_finite} in {directory}"
             if last_finite is not None else f"no checkpoint was saved before it ({directory})")
    raise NonFiniteError(
        f"training became non-finite at step {step} ({what}"
        f"{'; also non-finite: ' + ', '.join(others) if others else ''}); nothing non-finite "
        f"was saved; {where}")


def _check_resume(config: ml_collections.ConfigDict, workdir: str, ckpt: ckpt_lib.Checkpointer,
                  step: int, allow_config_change: bool) -> dict | None:
  """Refuses (ConfigError) to resume checkpoint `step` with another config, seed or batch.

  Returns what `config_record.check_resume` returns: the differences to record, or None.
  """
  t = config.train
  diff = config_record.check_resume(workdir, config_io.to_dict(config), step,
                                    allow_config_change)
  meta = ckpt.meta(step)
  # A workdir from before config.json: its checkpoint's stream seed, recorded as "seed", is all
  # there is to compare (with a record, the config comparison covers the seeds).
  data_seed = meta.get("data_seed", meta.get("seed")) if diff is None else None
  seed = seeds_lib.resolve(config).data
  if data_seed is not None and data_seed != seed and not allow_config_change:
    raise ConfigError(
        f"checkpoint {step} in {ckpt.directory} was trained on the sample stream of seed "
        f"{data_seed}, this run's is {seed} (config.seed, or config.train.seed where set); "
        f"rerun with the same seed, or pass --allow_config_change to continue with this one")
  if meta.get("global_batch", t.global_batch) != t.global_batch:
    # The stream position is step * global_batch: another batch size would replay or skip data.
    raise ConfigError(
        f"{ckpt.directory} was written with train.global_batch={meta['global_batch']}, this "
        f"run asks for {t.global_batch}; resume with the same batch, or start a new workdir "
        f"with --config.init_from={workdir}")
  return diff


def _record_config(config: ml_collections.ConfigDict, workdir: str, start: int | None,
                   diff: dict | None) -> None:
  """Writes config.json on a fresh start, or a resume whose change was allowed (process 0,
  after every process has read the old record)."""
  if start is not None and diff == {}:
    return  # resumed with the recorded config
  if start is not None and jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("config_record_read")
  if jax.process_index() != 0:
    return
  config_record.write(workdir, config_io.to_dict(config))
  if start is not None and diff:
    logging.warning("resuming step %d with a changed config: %s", start,
                    config_record.describe(diff, shown=len(diff)))
    config_record.record_change(workdir, start, diff)


def train(config: ml_collections.ConfigDict, workdir: str,
          allow_config_change: bool = False) -> dict[str, float]:
  """Trains to `config.train.steps`; returns the last logged metrics.

  Raises:
    ConfigError: the batch does not split over the devices, or a resumed run's config, seed or
      batch differs from the run's (the first two allowed by `allow_config_change`).
    NonFiniteError: a step's loss, gradients or params were not finite.
  """
  from input_pipeline import pipeline  # pylint: disable=import-outside-toplevel
  is_main = jax.process_index() == 0
  t = config.train
  seeds = seeds_lib.resolve(config)
  if t.global_batch % (jax.device_count() * t.grad_accum):
    raise ConfigError(f"train.global_batch={t.global_batch} is not divisible by the "
                      f"{jax.device_count()} devices x train.grad_accum={t.grad_accum}")
  # Resume checks first: a refused resume costs no data scan and no compilation.
  ckpt = ckpt_lib.Checkpointer(workdir, keep=t.keep_checkpoints)
  start = ckpt.latest_step()
  sync_manager = _arm_preemption_sync(start or 0)
  diff = None
  try:
    if start is not None:
      diff = _check_resume(config, workdir, ckpt, start, allow_config_change)
    _record_config(config, workdir, start, diff)
  except BaseException:
    ckpt.close()
    raise
  ensure_synthetic_data(config)
  index = build_index(config)

  mesh = sharding_lib.make_mesh(config)
  training = setup_lib.build_training(config, mesh, jax.random.key(seeds.init))
  state = training.state
  if start is not None:
    state, restored_meta = ckpt.restore(state, start)
    logging.info("resumed from step %d (next sample %d)", start, restored_meta["next_sample"])
  else:
    start = 0
    params = load_pretrained_params(config, state.params, workdir)
    if config.init_from:
      params, from_step = ckpt_lib.restore_params(config.init_from, params)
      logging.info("weights from %s step %d", config.init_from, from_step)
    state = state.replace(params=params)
  # A checkpoint this code resumed from passed the same finiteness checks when it was saved.
  last_finite = start or None

  batches = pipeline.batches(index, config, seed=seeds.data, start_step=start,
                             process_index=jax.process_index(),
                             process_count=jax.process_count(), global_batch=t.global_batch)
  device_batches = sharding_lib.prefetch_to_device(iter(batches), mesh)
  writer = metrics_writer.MetricsWriter(workdir, enabled=is_main, start_step=start)
  if writer.dropped:
    logging.warning("dropped %d rows of metrics.jsonl past the checkpoint (step %d)",
                    writer.dropped, start)
  meta = {"global_batch": t.global_batch, "seed": seeds.init, "data_seed": seeds.data,
          "config_sha256": config_io.sha256(config)}
  preemption = _Preemption(sync_manager)
  bar = tqdm.tqdm(total=t.steps, initial=start, disable=not is_main, unit="step",
                  dynamic_ncols=True)
  last_metrics: dict[str, float] = {}
  last_log_time, last_log_step = time.perf_counter(), start
  step = start
  # (step, metrics) since the last finiteness check: device arrays, read only at the next one.
  pending: list[tuple[int, dict]] = []
  # Traced window: the steps after the first one (which compiles).
  profile_window = (start + 1, start + 1 + t.profile_steps) if t.profile_steps else None
  tracing = False
  try:
    while step < t.steps:
      if profile_window and step == profile_window[0] and is_main:
        jax.profiler.start_trace(os.path.join(workdir, "profile"))
        tracing = True
      batch = next(device_batches)
      with jax.set_mesh(mesh):
        state, metrics = training.step_at(step)(state, batch)
      step += 1
      pending.append((step, metrics))
      if tracing and step == profile_window[1]:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        tracing = False
      log = step % t.log_every == 0 or step == t.steps
      save = step % t.checkpoint_every == 0 or step == t.steps
      preempted = preemption.reached(step, host_synced=log or save)
      save = save or preempted
      if log or save:
        # The only host syncs: every `log_every` steps and before each save, not every step.
        _check_finite(pending, last_finite, ckpt.directory)
        pending.clear()
      if log:
        scalars = {k: float(v) for k, v in jax.device_get(metrics).items()
                   if k != step_lib.FINITE}
        now = time.perf_counter()
        scalars["examples_per_s"] = (step - last_log_step) * t.global_batch / (now - last_log_time)
        scalars["steps_per_s"] = (step - last_log_step) / (now - last_log_time)
        last_log_time, last_log_step = now, step
        writer.write(step, scalars)
        # The bar advances only here, where the device has really finished these steps (jit
        # dispatch is async), so its steps/s and ETA are true.
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{scalars['loss']:.3f}", iou=f"{scalars['iou']:.2f}",
                        ex_s=f"{scalars['examples_per_s']:.0f}")
        last_metrics = scalars
      if save:
        ckpt.save(step, state, dict(meta, step=step, next_sample=step * t.global_batch),
                  force=True)
        last_finite = step
      if preempted:
        logging.warning("SIGTERM: process %d saved step %d, exiting", jax.process_index(), step)
        break
  finally:
    if tracing:
      jax.profiler.stop_trace()
    bar.close()
    ckpt.wait()
    ckpt.close()
    writer.close()
    preemption.restore()
  return last_metrics
