"""The training loop behind `train.py`: data, sharded state, jitted step, checkpoints, logging.

Resuming: the same command restarts from the latest checkpoint; sample i of the stream is a pure
function of (seed, i), so step s continues at sample s * global_batch on any host count.
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

from lgtrack_jax.training import checkpoint as ckpt_lib
from lgtrack_jax.training import metrics_writer
from lgtrack_jax.training import setup as setup_lib
from lgtrack_jax.training import sharding as sharding_lib


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
                         num_frames=config.data.synthetic_frames, seed=config.seed)
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
  """Turns SIGTERM into a flag the loop polls, so the run saves before it exits."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains to `config.train.steps`; returns the last logged metrics."""
  from input_pipeline import pipeline  # pylint: disable=import-outside-toplevel
  is_main = jax.process_index() == 0
  t = config.train
  if t.global_batch % (jax.device_count() * t.grad_accum):
    raise ValueError(f"train.global_batch={t.global_batch} is not divisible by the "
                     f"{jax.device_count()} devices x train.grad_accum={t.grad_accum}")
  ensure_synthetic_data(config)
  index = build_index(config)

  mesh = sharding_lib.make_mesh(config)
  training = setup_lib.build_training(config, mesh, jax.random.key(config.seed))
  state = training.state
  ckpt = ckpt_lib.Checkpointer(workdir, keep=t.keep_checkpoints)
  start = ckpt.latest_step()
  if start is not None:
    state, meta = ckpt.restore(state)
    if meta.get("global_batch", t.global_batch) != t.global_batch:
      # The stream position is step * global_batch: another batch size would replay or skip data.
      raise ValueError(
          f"{ckpt.directory} was written with train.global_batch={meta['global_batch']}, this "
          f"run asks for {t.global_batch}; resume with the same batch, or start a new workdir "
          f"with --config.init_from={workdir}")
    logging.info("resumed from step %d (next sample %d)", start, meta["next_sample"])
  else:
    start = 0
    params = load_pretrained_params(config, state.params, workdir)
    if config.init_from:
      params, from_step = ckpt_lib.restore_params(config.init_from, params)
      logging.info("weights from %s step %d", config.init_from, from_step)
    state = state.replace(params=params)

  batches = pipeline.batches(index, config, seed=t.seed, start_step=start,
                             process_index=jax.process_index(),
                             process_count=jax.process_count(), global_batch=t.global_batch)
  device_batches = sharding_lib.prefetch_to_device(iter(batches), mesh)
  writer = metrics_writer.MetricsWriter(workdir, enabled=is_main)
  preemption = _Preemption()
  bar = tqdm.tqdm(total=t.steps, initial=start, disable=not is_main, unit="step",
                  dynamic_ncols=True)
  last_metrics: dict[str, float] = {}
  last_log_time, last_log_step = time.perf_counter(), start
  step = start
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
      if tracing and step == profile_window[1]:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        tracing = False
      if step % t.log_every == 0 or step == t.steps:
        # The only host sync: metrics are fetched every `log_every` steps, not every step.
        scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not np.isfinite(scalars["loss"]):
          raise FloatingPointError(
              f"loss is {scalars['loss']} at step {step} (terms: {scalars}); the last good "
              f"checkpoint is step {ckpt.latest_step()} in {ckpt.directory}")
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
      if step % t.checkpoint_every == 0 or step == t.steps or preemption.requested:
        ckpt.save(step, state, {"step": step, "next_sample": step * t.global_batch,
                                "global_batch": t.global_batch, "seed": t.seed},
                  force=True)
      if preemption.requested:
        logging.warning("SIGTERM: saved step %d, exiting", step)
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
