"""Speed of LGTrack: tracking latency and throughput, training throughput, compile time, memory,
FLOPs and model FLOPs utilisation. One JSON line per measurement.

  python benchmarks/speed.py --config configs/lgtrack_b256.py [--batch_sequences 1,8]
  python benchmarks/speed.py --config configs/tiny.py --config.model.dtype=bfloat16
  python benchmarks/speed.py --config configs/lgtrack_b256.py --config.model.ce.layers='(3,6,9)'

Random weights and random frames (1280x720 by default, LaSOT's most common size): speed does not
depend on what the weights are. Tracking runs the real tracker (`LGTracker.track_many`): host
padding, transfer, crop in the jit, the model, the window and the box mapping, per frame. Training
runs the real jitted train step (optimizer included) on one device's share of a batch.

Keys of each line: name, value, unit, config, batch_sequences, device, and the speed switches
dtype, attention, conv, ce ([layers, keep_ratio] or null), search_window. Names:
  track_latency_ms        K = 1: median seconds per frame (what a single video sees)
  track_frames_per_s      frames per second with K sequences in flight
  vit_latency_ms          K = 1: a bare ViT of the same width/depth over the same tokens, the
                          reference of the latency target
  vit_frames_per_s        that bare ViT at batch K: what batching K frames gives on this device
                          before any tracker cost (the reference of the batched target)
  vit_gflops_per_frame    its FLOPs
  track_vs_vit_latency    K = 1: the tracker's per-frame latency over the bare ViT's, the two
                          interleaved call by call over one sequence (the latency target's ratio,
                          robust to the machine's drift between separate measurements)
  gflops_per_frame        XLA cost analysis of the per-frame function, divided by K
  train_examples_per_s    per device, steady state
  gflops_per_train_example
  compile_s               per-frame function (track) and train step (train)
  peak_memory_mb          device peak (accelerators) or host max RSS (CPU; says so in unit)
  peak_tflops             the device peak MFU is measured against (table, or a measured
                          matmul on CPU)
  mfu                     achieved model FLOP/s / peak
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

# Run as a script from anywhere: the repository root holds `configs/` (not an installed package).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lgtrack_jax import flops as flops_lib  # pylint: disable=wrong-import-position
from lgtrack_jax.models import layers, lgtrack  # pylint: disable=wrong-import-position
from lgtrack_jax.models.vit import Block, PatchEmbed
from lgtrack_jax.tracking.tracker import Job, LGTracker
from lgtrack_jax.training import setup as setup_lib, sharding, step as step_lib
from lgtrack_jax.training.fake_batch import random_batch

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_BATCH_SEQUENCES = flags.DEFINE_list("batch_sequences", ["1", "8"], "K values to track with.")
_FRAMES = flags.DEFINE_integer("frames", 12, "Timed frames per sequence.")
_FRAME_SIZE = flags.DEFINE_list("frame_size", ["720", "1280"], "Frame height, width.")
_TRAIN_BATCH = flags.DEFINE_integer("train_batch", None,
                                    "Examples per train step (default: config.train.global_batch "
                                    "per device, at most 8 on CPU).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 3, "Timed train steps.")
_WHAT = flags.DEFINE_list("what", ["track", "train"], "Which benchmarks to run.")
flags.mark_flags_as_required(["config"])

# Dense bf16 peak FLOP/s per device (vendor figures, no sparsity). float32 on GPUs without TF32
# is far lower; MFU is then a lower bound of what the hardware gives that dtype.
PEAK_FLOPS = {
    "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12,
    "V100": 125e12, "RTX 3090": 71e12, "RTX 4090": 165e12, "2080 Ti": 57e12, "T4": 65e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
    "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}


def emit(name: str, value: float, unit: str, k: int | None = None, **extra) -> None:
  m = _CONFIG.value.model
  print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit,
                    "config": config_flags.get_config_filename(flags.FLAGS["config"]),
                    "batch_sequences": k, "device": jax.devices()[0].device_kind,
                    # The switches that change speed, so that lines of different runs compare.
                    "dtype": m.dtype, "attention": m.attention, "conv": m.conv,
                    "ce": [list(m.ce.layers), m.ce.keep_ratio] if m.ce.layers else None,
                    "search_window": _CONFIG.value.eval.search_window,
                    **extra}),
        flush=True)


def peak_flops(dtype) -> tuple[float, str]:
  """(peak FLOP/s of device 0, where the figure comes from) for compute `dtype`."""
  kind = jax.devices()[0].device_kind
  for key, value in PEAK_FLOPS.items():
    if key.lower() in kind.lower():
      return value, f"table ({key}, dense bf16)"
  # CPU or unknown: the best of a few large matmuls in the compute dtype, all cores, through the
  # model's own dot (float32 accumulation for bf16: oneDNN's AMX kernels where the CPU has them).
  n = 2048
  dtype = jnp.dtype(dtype)
  dot = layers.dot_general_for(dtype) or jax.lax.dot_general
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x: dot(x, x, (((1,), (0,)), ((), ()))))
  f(a).block_until_ready()
  best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(5))
  return 2 * n ** 3 / best, f"measured {dtype.name} matmul"


def _timed(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def compile_timed(lowered) -> tuple[float, Any]:
  """(seconds to compile `lowered`, the compiled function): one compilation, or one read from
  JAX's persistent compilation cache where one is set (`compile_s` lines name it)."""
  t0 = time.perf_counter()
  compiled = lowered.compile()
  return time.perf_counter() - t0, compiled


def _compilation_cache() -> str | None:
  """JAX's persistent compilation cache directory, if set: `compile_s` may then be a cache read."""
  return jax.config.jax_compilation_cache_dir or None


def peak_memory() -> tuple[float, str]:
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2 ** 20, "MB (device peak)"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB (host max RSS)"


def random_params(config):
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  return model, params


# Tokens of the benchmark's sentence with [CLS]/[SEP] (LaSOT's sentences have 8-20).
_SENTENCE_TOKENS = 8


def fake_tokenize(config):
  l = config.model.text.max_len

  def tokenize(sentences):
    ids = np.zeros((len(sentences), l), np.int32)
    ids[:, :_SENTENCE_TOKENS] = np.arange(1000, 1000 + _SENTENCE_TOKENS)
    return ids, (ids > 0).astype(np.int32)

  return tokenize


def bench_track(config, peak: float) -> None:
  logging.info("track: initialising the model and the tracker")
  model, params = random_params(config)
  tracker = LGTracker(model, params, config, fake_tokenize(config))
  h, w = (int(v) for v in _FRAME_SIZE.value)
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
  box = np.array([w * 0.45, h * 0.4, w * 0.1, h * 0.2])

  def jobs(k: int, n: int) -> list[Job]:
    return [Job(i, [frames[j % 4] for j in range(n)], box, "the red car on the left")
            for i in range(k)]

  for k in (int(v) for v in _BATCH_SEQUENCES.value):
    logging.info("track K=%d: compiling the per-frame function", k)
    lowered = tracker.lower_step(k, (h, w), _SENTENCE_TOKENS)
    compile_s, compiled = compile_timed(lowered)
    flops, flops_source = flops_lib.count_flops(
        lowered, compiled, lambda d: tracker.lower_step(k, (h, w), _SENTENCE_TOKENS, device=d))
    flops /= k
    logging.info("track K=%d: warm-up (compiles every piece)", k)
    list(tracker.track_many(jobs(k, 3), "nl_bbox", k))  # warm-up: compiles every piece
    logging.info("track K=%d: timing %d frames per sequence", k, _FRAMES.value + 1)
    n = _FRAMES.value
    t0 = time.perf_counter()
    results = list(tracker.track_many(jobs(k, n + 1), "nl_bbox", k))
    seconds = time.perf_counter() - t0
    fps = k * (n + 1) / seconds
    per_frame = np.median(np.concatenate([times[1:] for _, _, times in results]))
    emit("compile_s", compile_s, "s", k, what="track step", compilation_cache=_compilation_cache())
    emit("gflops_per_frame", flops / 1e9, "GFLOP", k, source=flops_source)
    if k == 1:
      emit("track_latency_ms", per_frame * 1e3, "ms", k)
    emit("track_frames_per_s", fps, "frames/s", k, note="first frames (init) included")
    emit("mfu", flops * fps / peak, "fraction", k, what="track")
    logging.info("track K=%d: the bare ViT", k)
    vit_call, vit_flops = _bare_vit_call(config, k)
    vit_fps = k / float(np.median([_timed(vit_call) for _ in range(5)]))
    emit("vit_frames_per_s", vit_fps, "frames/s", k)
    if k == 1:
      emit("vit_latency_ms", 1e3 / vit_fps, "ms", k, tokens=_tokens(config))
      emit("vit_gflops_per_frame", vit_flops / 1e9, "GFLOP", k, tokens=_tokens(config))
      ratio, quartiles = _interleaved_ratio(tracker, vit_call, frames, box, n)
      emit("track_vs_vit_latency", ratio, "x", k,
           frame_ratio_quartiles=[round(float(q), 4) for q in quartiles],
           note="median per-frame latency over the bare ViT's, the two interleaved call by call; "
                "frame_ratio_quartiles: 25th and 75th percentiles of each frame's time over the "
                "ViT call just before it")


def _interleaved_ratio(tracker, vit_call, frames, box, n: int) -> tuple[float, np.ndarray]:
  """Tracks one sequence of n + 1 frames with a bare ViT call before each frame after the first:
  (the tracker's median per-frame latency over the ViT's, the quartiles [2] of the frame-by-frame
  ratios: how far one sequence's figure can be trusted). Interleaved, the two see the same
  machine state, which on a shared CPU drifts by more than the few percent between them."""
  vit_times = []

  def frames_between_vit_calls():
    for j in range(n + 1):
      if j:  # frame 0 initialises the tracker (not timed as a step)
        vit_times.append(_timed(vit_call))
      yield frames[j % len(frames)]

  ((_, _, times),) = tracker.track_many(
      [Job(0, frames_between_vit_calls(), box, "the red car on the left")], "nl_bbox", 1)
  times, vit_times = np.asarray(times[1:]), np.asarray(vit_times)
  return (float(np.median(times) / np.median(vit_times)),
          np.percentile(times / vit_times, [25, 75]))


def _tokens(config) -> int:
  p, d = config.model.patch_size, config.data
  return (d.template_size // p) ** 2 + (d.search_size // p) ** 2


def _bare_vit(config, k: int):
  """A bare ViT of the model's width/depth/dtype over its template + search tokens, batch k:
  (jitted apply, params, inputs). The reference both speed targets are measured against."""
  m = config.model
  zs, xs = config.data.template_size, config.data.search_size
  dtype = jnp.dtype(m.dtype)

  class BareViT(nn.Module):
    @nn.compact
    def __call__(self, z, x):
      embed = PatchEmbed(m.patch_size, m.hidden_size, dtype=dtype, conv=m.conv)
      v = jnp.concatenate([embed(z)[0], embed(x)[0]], axis=1)
      for _ in range(m.depth):
        v = Block(m.num_heads, m.mlp_ratio, dtype=dtype, attention=m.attention)(v)
      return v

  inputs = (jnp.zeros((k, zs, zs, 3), dtype), jnp.zeros((k, xs, xs, 3), dtype))
  vit = BareViT()
  # Weights held in the compute dtype, as the tracker holds them.
  params = layers.cast_kernels(jax.jit(vit.init)(jax.random.key(0), *inputs), dtype)
  return jax.jit(vit.apply), params, inputs


def _bare_vit_call(config, k: int) -> tuple[Callable[[], Any], float]:
  """The bare ViT at batch k, compiled and warmed up: (a call that runs it to completion,
  FLOPs per frame)."""
  fwd, params, inputs = _bare_vit(config, k)
  lowered = fwd.lower(params, *inputs)
  compiled = lowered.compile()
  call = lambda: compiled(params, *inputs).block_until_ready()
  call()
  flops, _ = flops_lib.count_flops(
      lowered, compiled, lambda d: fwd.lower(*flops_lib.shapes_on((params, *inputs), d)))
  return call, flops / k


def bench_train(config, peak: float) -> None:
  n = _TRAIN_BATCH.value or min(config.train.global_batch // jax.device_count(),
                                8 if jax.devices()[0].platform == "cpu" else 1 << 30)
  config = config.copy_and_resolve_references()
  config.unlock()
  config.train.global_batch = n
  config.mesh.data, config.mesh.fsdp = 1, 1
  mesh = sharding.make_mesh(config, jax.devices()[:1])
  logging.info("train: building the train state, batch %d", n)
  training = setup_lib.build_training(config, mesh, jax.random.key(0))
  model, state, step = training.model, training.state, training.step
  batch = sharding.global_batch(random_batch(config, n), mesh)
  with jax.set_mesh(mesh):
    lowered = step.lower(state, batch)
    compile_s, compiled = compile_timed(lowered)
  host_step = setup_lib.unsharded_step(training, config)
  flops, flops_source = flops_lib.count_flops(
      lowered, compiled, lambda d: host_step.lower(*flops_lib.shapes_on((state, batch), d)))
  with jax.set_mesh(mesh):
    state, metrics = step(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(_TRAIN_STEPS.value):
      state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - t0) / _TRAIN_STEPS.value
  # Where a step's time goes: the forward (loss) alone, forward + backward, and the whole step
  # (which adds the optimizer update and the metrics).
  loss_fn = step_lib.make_loss_fn(model, config)
  fwd = jax.jit(lambda p, b: loss_fn(p, b)[0])
  grad = jax.jit(jax.grad(lambda p, b: loss_fn(p, b)[0]))
  with jax.set_mesh(mesh):
    for name, fn in (("forward", fwd), ("forward_backward", grad)):
      jax.block_until_ready(fn(state.params, batch))
      t = min(_timed(lambda fn=fn: jax.block_until_ready(fn(state.params, batch)))
              for _ in range(_TRAIN_STEPS.value))
      emit(f"train_{name}_ms", t * 1e3, "ms", None, batch=n)
  emit("train_step_ms", seconds * 1e3, "ms", None, batch=n)
  emit("compile_s", compile_s, "s", None, what="train step", batch=n,
       compilation_cache=_compilation_cache())
  emit("gflops_per_train_example", flops / n / 1e9, "GFLOP", None, batch=n, source=flops_source)
  emit("train_examples_per_s", n / seconds, "examples/s", None, batch=n, per="device")
  emit("mfu", flops / seconds / peak, "fraction", None, what="train", batch=n)


def main(argv):
  del argv
  config = _CONFIG.value
  peak, source = peak_flops(config.model.dtype)
  emit("peak_tflops", peak / 1e12, "TFLOP/s", None, source=source)
  if "track" in _WHAT.value:
    bench_track(config, peak)
  if "train" in _WHAT.value:
    bench_train(config, peak)
  mem, unit = peak_memory()
  emit("peak_memory_mb", mem, unit, None)


if __name__ == "__main__":
  app.run(main)
