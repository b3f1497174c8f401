"""Speed of LGTrack: tracking latency and throughput, training throughput, compile time, memory,
FLOPs and model FLOPs utilisation. One JSON line per measurement, then one summary line per switch
set.

  python benchmarks/speed.py --config configs/lgtrack_b256.py [--batch_sequences 1,8]
  python benchmarks/speed.py --config configs/tiny.py --config.model.dtype=bfloat16
  python benchmarks/speed.py --config configs/lgtrack_b256.py --what=track \
    --switch_sets='default;model.ce.layers=(3,6,9);model.dtype=bfloat16,model.attention=cudnn'

Random weights and random frames (1280x720 by default, LaSOT's most common size): speed does not
depend on what the weights are. Tracking runs the real tracker (`LGTracker.track_many`): host
padding, transfer, crop in the jit, the model, the window and the box mapping, per frame. Training
runs the real jitted train step (optimizer included) on one device's share of a batch.

--switch_sets: ';'-separated sets of config overrides measured one after the other in this process
(`default` or an empty set: the config as given by --config and its --config.* flags; otherwise
comma-separated key=value, values as Python literals or plain strings, keys relative to the
config's root). Every set is measured in full, its bare ViT included, so that its ratios are
against a ViT timed on the same machine in the same minutes. A misspelt key or a value of the wrong
type is an error before any work.

Keys of each measurement line: name, value, unit, config, batch_sequences, device, switches (the
set's overrides, {} for the default) and the speed switches dtype, attention, conv, ce ([layers,
keep_ratio] or null), search_window, template_cache. Names:
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
  step_memory_mb          the compiled per-frame function's buffers (arguments, outputs and
                          temporaries, XLA's memory analysis): this switch set's own figure
  train_examples_per_s    per device, steady state
  gflops_per_train_example
  compile_s               per-frame function (track) and train step (train)
  peak_memory_mb          device peak (accelerators) or host max RSS (CPU; says so in unit), of
                          the process so far: with several switch sets, the largest up to this one
  peak_tflops             the device peak MFU is measured against (table, or a measured
                          matmul on CPU)
  mfu                     achieved model FLOP/s / peak

The summary line of a switch set (name 'summary'): config, device, switches, the speed switches,
and for each K of --batch_sequences fps_k<K>, vit_fps_k<K>, mfu_k<K>, step_memory_mb_k<K>; for
K = 1 latency_ms_k1, vit_latency_ms_k1, ratio_interleaved (track_vs_vit_latency) and
ratio_quartiles; gflops_per_frame and vit_gflops_per_frame (smallest K), peak_tflops,
peak_memory_mb and peak_memory_unit; with --what=train also train_examples_per_s and mfu_train.
A figure not measured (no K = 1, no tracking) is null.
"""

from __future__ import annotations

import ast
import dataclasses
import gc
import json
import os
import resource
import sys
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
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
_SWITCH_SETS = flags.DEFINE_string(
    "switch_sets", "default",
    "';'-separated sets of config overrides, each measured in full (its bare ViT included): "
    "'default' or comma-separated key=value, e.g. "
    "'default;model.ce.layers=(3,6,9);model.dtype=bfloat16,model.attention=cudnn'.")
flags.mark_flags_as_required(["config"])

# Dense bf16 peak FLOP/s per device (vendor figures, no sparsity). float32 on GPUs without TF32
# is far lower; MFU is then a lower bound of what the hardware gives that dtype.
PEAK_FLOPS = {
    "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12,
    "V100": 125e12, "RTX 3090": 71e12, "RTX 4090": 165e12, "2080 Ti": 57e12, "T4": 65e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
    "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}


# --- switch sets --------------------------------------------------------------------------------
def _split_top_level(text: str, sep: str) -> list[str]:
  """`text` split at each `sep` outside brackets and quotes: 'a=(1,2),b=3' -> ['a=(1,2)', 'b=3']."""
  parts, depth, quote, start = [], 0, None, 0
  for i, ch in enumerate(text):
    if quote:
      quote = None if ch == quote else quote
    elif ch in "'\"":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == sep and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  parts.append(text[start:])
  return [p.strip() for p in parts]


def _literal(text: str) -> Any:
  """A Python literal ('True', '(3, 6, 9)', '0.5'), else the text itself ('bfloat16')."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_switch_sets(text: str) -> list[dict[str, Any]]:
  """--switch_sets -> one {dotted key: value} per set ({} for 'default' or an empty set).

  Raises:
    ValueError: an entry that is not key=value, or a key given twice in one set.
  """
  sets = []
  for spec in _split_top_level(text, ";"):
    switches: dict[str, Any] = {}
    if spec not in ("", "default"):
      for item in _split_top_level(spec, ","):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
          raise ValueError(f"--switch_sets: {item!r} in {spec!r} is not key=value")
        key = key.strip()
        if key in switches:
          raise ValueError(f"--switch_sets: {key} is set twice in {spec!r}")
        switches[key] = _literal(value.strip())
    sets.append(switches)
  return sets


def with_switches(config: ml_collections.ConfigDict, switches: dict[str, Any]
                  ) -> ml_collections.ConfigDict:
  """A copy of `config` (still locked) with each dotted key set to its value.

  Raises:
    ValueError: a key the config does not have, or a value of another type than the key's.
  """
  config = config.copy_and_resolve_references()
  for key, value in switches.items():
    *path, leaf = key.split(".")
    node = config
    for part in path:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ValueError(f"--switch_sets: the config has no key {key}")
      node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ValueError(f"--switch_sets: the config has no key {key}")
    try:
      node[leaf] = value
    except TypeError as e:  # ConfigDict keeps each field's type
      raise ValueError(f"--switch_sets: {key}={value!r}: {e}") from e
  return config


def _jsonable(value: Any) -> Any:
  return list(value) if isinstance(value, tuple) else value


# --- reporting ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
  """One switch set's measurements: its config, the overrides that made it, and the figures of
  its summary line (filled in as they are measured)."""

  config: ml_collections.ConfigDict
  switches: dict[str, Any]
  summary: dict[str, Any] = dataclasses.field(default_factory=dict)

  def fields(self) -> dict[str, Any]:
    """What identifies the run in every line: config file, device and the speed switches."""
    m = self.config.model
    return {"config": config_flags.get_config_filename(flags.FLAGS["config"]),
            "device": jax.devices()[0].device_kind,
            "switches": {k: _jsonable(v) for k, v in self.switches.items()},
            # The switches that change speed, so that lines of different runs compare.
            "dtype": m.dtype, "attention": m.attention, "conv": m.conv,
            "ce": [list(m.ce.layers), m.ce.keep_ratio] if m.ce.layers else None,
            "search_window": self.config.eval.search_window,
            # Per-frame ViT over the search tokens only (`get`: configs before the key have none).
            "template_cache": m.get("template_cache")}

  def emit(self, name: str, value: float, unit: str, k: int | None = None, **extra) -> None:
    """One measurement line."""
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit,
                      "batch_sequences": k, **self.fields(), **extra}), flush=True)

  def emit_summary(self) -> None:
    """The switch set's one summary line: every figure of the tracking targets together."""
    ks = sorted(int(v) for v in _BATCH_SEQUENCES.value) if "track" in _WHAT.value else []
    keys = ["latency_ms_k1", "vit_latency_ms_k1", "ratio_interleaved", "ratio_quartiles",
            "gflops_per_frame", "vit_gflops_per_frame"]
    for k in ks:
      keys += [f"fps_k{k}", f"vit_fps_k{k}", f"mfu_k{k}", f"step_memory_mb_k{k}"]
    keys += ["peak_tflops", "peak_memory_mb", "peak_memory_unit"]
    if "train" in _WHAT.value:
      keys += ["train_examples_per_s", "mfu_train"]
    figures = {k: _rounded(self.summary.get(k)) for k in keys}
    print(json.dumps({"name": "summary", **self.fields(), **figures}), flush=True)


def _rounded(value: Any) -> Any:
  if isinstance(value, (float, np.floating)):
    return round(float(value), 4)
  if isinstance(value, (list, tuple, np.ndarray)):
    return [_rounded(v) for v in value]
  return value


# --- measurements -------------------------------------------------------------------------------
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


def step_memory_mb(compiled) -> float | None:
  """The compiled function's buffers in MB (arguments + outputs + temporaries, less what the
  outputs alias), from XLA's memory analysis; None where the backend gives none."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (not implemented on every backend)
    return None
  if m is None:
    return None
  total = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
           - m.alias_size_in_bytes)
  return total / 2 ** 20


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


def bench_track(run: Run, peak: float) -> None:
  config, summary = run.config, run.summary
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

  for k in sorted(int(v) for v in _BATCH_SEQUENCES.value):
    logging.info("track K=%d: compiling the per-frame function", k)
    lowered = tracker.lower_step(k, (h, w), _SENTENCE_TOKENS)
    compile_s, compiled = compile_timed(lowered)
    flops, flops_source = flops_lib.count_flops(
        lowered, compiled, lambda d: tracker.lower_step(k, (h, w), _SENTENCE_TOKENS, device=d))
    flops /= k
    step_mb = step_memory_mb(compiled)
    logging.info("track K=%d: warm-up (compiles every piece)", k)
    list(tracker.track_many(jobs(k, 3), "nl_bbox", k))  # warm-up: compiles every piece
    logging.info("track K=%d: timing %d frames per sequence", k, _FRAMES.value + 1)
    n = _FRAMES.value
    t0 = time.perf_counter()
    results = list(tracker.track_many(jobs(k, n + 1), "nl_bbox", k))
    seconds = time.perf_counter() - t0
    fps = k * (n + 1) / seconds
    per_frame = np.median(np.concatenate([times[1:] for _, _, times in results]))
    run.emit("compile_s", compile_s, "s", k, what="track step",
             compilation_cache=_compilation_cache())
    run.emit("gflops_per_frame", flops / 1e9, "GFLOP", k, source=flops_source)
    if step_mb is not None:
      run.emit("step_memory_mb", step_mb, "MB", k, source="XLA memory analysis")
    if k == 1:
      run.emit("track_latency_ms", per_frame * 1e3, "ms", k)
      summary["latency_ms_k1"] = per_frame * 1e3
    run.emit("track_frames_per_s", fps, "frames/s", k, note="first frames (init) included")
    run.emit("mfu", flops * fps / peak, "fraction", k, what="track")
    summary.setdefault("gflops_per_frame", flops / 1e9)  # the smallest K's (K = 1 by default)
    summary.update({f"fps_k{k}": fps, f"mfu_k{k}": flops * fps / peak,
                    f"step_memory_mb_k{k}": step_mb})
    logging.info("track K=%d: the bare ViT", k)
    vit_call, vit_flops = _bare_vit_call(config, k)
    vit_fps = k / float(np.median([_timed(vit_call) for _ in range(5)]))
    run.emit("vit_frames_per_s", vit_fps, "frames/s", k)
    summary[f"vit_fps_k{k}"] = vit_fps
    summary.setdefault("vit_gflops_per_frame", vit_flops / 1e9)
    if k == 1:
      run.emit("vit_latency_ms", 1e3 / vit_fps, "ms", k, tokens=_tokens(config))
      run.emit("vit_gflops_per_frame", vit_flops / 1e9, "GFLOP", k, tokens=_tokens(config))
      ratio, quartiles = _interleaved_ratio(tracker, vit_call, frames, box, n)
      run.emit("track_vs_vit_latency", ratio, "x", k,
               frame_ratio_quartiles=[round(float(q), 4) for q in quartiles],
               note="median per-frame latency over the bare ViT's, the two interleaved call by "
                    "call; frame_ratio_quartiles: 25th and 75th percentiles of each frame's time "
                    "over the ViT call just before it")
      summary.update({"vit_latency_ms_k1": 1e3 / vit_fps, "ratio_interleaved": ratio,
                      "ratio_quartiles": [float(q) for q in quartiles]})


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


# Compiled bare ViTs by what defines them: switch sets that leave the ViT as it is (template
# caching, CE, the decoder, ...) time the same one again instead of compiling it again.
_BARE_VITS: dict[tuple, tuple[Callable[[], Any], float]] = {}


def _bare_vit_call(config, k: int) -> tuple[Callable[[], Any], float]:
  """The bare ViT at batch k, compiled and warmed up: (a call that runs it to completion,
  FLOPs per frame)."""
  m, d = config.model, config.data
  key = (k, m.dtype, m.attention, m.conv, m.patch_size, m.hidden_size, m.depth, m.num_heads,
         m.mlp_ratio, d.template_size, d.search_size)
  if key not in _BARE_VITS:
    fwd, params, inputs = _bare_vit(config, k)
    lowered = fwd.lower(params, *inputs)
    compiled = lowered.compile()
    call = lambda: compiled(params, *inputs).block_until_ready()
    call()
    flops, _ = flops_lib.count_flops(
        lowered, compiled, lambda d: fwd.lower(*flops_lib.shapes_on((params, *inputs), d)))
    _BARE_VITS[key] = call, flops / k
  return _BARE_VITS[key]


def bench_train(run: Run, peak: float) -> None:
  config = run.config
  n = _TRAIN_BATCH.value or min(config.train.global_batch // jax.device_count(),
                                8 if jax.devices()[0].platform == "cpu" else 1 << 30)
  config = config.copy_and_resolve_references()
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
      run.emit(f"train_{name}_ms", t * 1e3, "ms", None, batch=n)
  run.emit("train_step_ms", seconds * 1e3, "ms", None, batch=n)
  run.emit("compile_s", compile_s, "s", None, what="train step", batch=n,
           compilation_cache=_compilation_cache())
  run.emit("gflops_per_train_example", flops / n / 1e9, "GFLOP", None, batch=n,
           source=flops_source)
  run.emit("train_examples_per_s", n / seconds, "examples/s", None, batch=n, per="device")
  run.emit("mfu", flops / seconds / peak, "fraction", None, what="train", batch=n)
  run.summary.update({"train_examples_per_s": n / seconds, "mfu_train": flops / seconds / peak})


def main(argv):
  del argv
  try:  # every switch set checked before any work
    runs = [Run(with_switches(_CONFIG.value, switches), switches)
            for switches in parse_switch_sets(_SWITCH_SETS.value)]
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  peaks: dict[str, tuple[float, str]] = {}
  for run in runs:
    dtype = run.config.model.dtype
    if dtype not in peaks:  # measured once per dtype (a CPU's matmul takes a while)
      peaks[dtype] = peak_flops(dtype)
    peak, source = peaks[dtype]
    run.emit("peak_tflops", peak / 1e12, "TFLOP/s", None, source=source)
    run.summary["peak_tflops"] = peak / 1e12
    if "track" in _WHAT.value:
      bench_track(run, peak)
    if "train" in _WHAT.value:
      bench_train(run, peak)
    mem, unit = peak_memory()
    run.emit("peak_memory_mb", mem, unit, None)
    run.summary.update({"peak_memory_mb": mem, "peak_memory_unit": unit})
    run.emit_summary()
    gc.collect()  # the set's tracker and params (reference cycles through its jitted methods)


if __name__ == "__main__":
  app.run(main)
