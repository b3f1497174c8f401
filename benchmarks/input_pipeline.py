"""Training input pipeline throughput: samples/s per CPU core on 1280x720 JPEG frames.

  python benchmarks/input_pipeline.py [--threads N] [--batches 30] [--config CONFIG.py]

Generates, in a temp dir (or --workdir), a LaSOT-like mixture of three sources in their own
layouts (LaSOT 2 : TNL2K 1 : GOT-10k 1), 1280x720 frames of natural-image-like texture, then
times the real tf.data pipeline (`pipeline.make_dataset`: read, decode, jittered crop, augment in
the TF graph) with `num_parallel_calls = --threads` and the config's crop sizes. Prints one JSON
line: samples/s; samples/s per core, i.e. per CPU-second the process used (so other load on the
machine does not distort it); and the cores a host needs to feed a step of a given time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from input_pipeline import mixture  # noqa: E402  pylint: disable=wrong-import-position
from lgtrack_jax import config_io  # noqa: E402  pylint: disable=wrong-import-position

W, H = 1280, 720


def _texture(rng: np.random.Generator) -> np.ndarray:
  """[H, W, 3] uint8 smooth colour fields plus grain: JPEGs of a realistic size (~100-200 KB)."""
  small = rng.uniform(0, 255, (9, 16, 3)).astype(np.float32)
  img = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((W, H), Image.BICUBIC),
                   np.float32)
  yy, xx = np.mgrid[:H, :W]
  stripes = 20 * np.sin(xx / rng.uniform(3, 12) + yy / rng.uniform(5, 20))[..., None]
  img = img + stripes + rng.normal(0, 6, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
  """[n, 4] smoothly moving x, y, w, h boxes of 40-300 px inside the frame."""
  size = rng.uniform(40, 300, 2)
  start = rng.uniform([0, 0], [W - size[0], H - size[1]])
  step = rng.uniform(-4, 4, 2)
  xy = np.clip(start + np.arange(n)[:, None] * step, 0, [W - size[0], H - size[1]])
  return np.concatenate([xy, np.broadcast_to(size, (n, 2))], axis=1).round(1)


def generate(out: Path, sequences: int, frames: int, seed: int = 0) -> list[tuple]:
  """Writes the three sources; returns the `config.data.train` mixture."""
  rng = np.random.default_rng(seed)
  pool = []  # a few distinct encoded frames, reused (decode cost depends on content, not name)
  for _ in range(6):
    path = out / f"pool{len(pool)}.jpg"
    Image.fromarray(_texture(rng)).save(path, quality=90)
    pool.append(path.read_bytes())

  def frames_to(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(names):
      (folder / n).write_bytes(pool[k % len(pool)])

  def rows(b: np.ndarray) -> str:
    return "".join(",".join(f"{v:g}" for v in r) + "\n" for r in b)

  lasot, tnl2k, got = out / "lasot", out / "tnl2k" / "train", out / "got10k" / "train"
  names = []
  for s in range(sequences):
    name = f"thing-{s + 1}"
    seq = lasot / "thing" / name
    frames_to(seq / "img", [f"{k:08d}.jpg" for k in range(1, frames + 1)])
    (seq / "groundtruth.txt").write_text(rows(_boxes(rng, frames) + [1, 1, 0, 0]))
    (seq / "full_occlusion.txt").write_text(",".join(["0"] * frames))
    (seq / "out_of_view.txt").write_text(",".join(["0"] * frames))
    (seq / "nlp.txt").write_text("the thing moving across the field")
    names.append(name)
    seq = tnl2k / f"video_{s}"
    frames_to(seq / "imgs", [f"{k:05d}.jpg" for k in range(1, frames + 1)])
    (seq / "groundtruth.txt").write_text(rows(_boxes(rng, frames)))
    (seq / "language.txt").write_text("a person in a red coat")
    seq = got / f"GOT-10k_Train_{s + 1:06d}"
    frames_to(seq, [f"{k:08d}.jpg" for k in range(1, frames + 1)])
    (seq / "groundtruth.txt").write_text(rows(_boxes(rng, frames)))
    (seq / "absence.label").write_text("0\n" * frames)
    (seq / "cover.label").write_text("8\n" * frames)
  (lasot / "training_set.txt").write_text("".join(f"{n}\n" for n in names))
  (got / "list.txt").write_text("".join(f"GOT-10k_Train_{s + 1:06d}\n" for s in range(sequences)))
  return [("lasot", str(lasot), 2.0, "train"), ("tnl2k", str(out / "tnl2k"), 1.0, "train"),
          ("got10k", str(out / "got10k"), 1.0, "train")]


def tokenize(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
  ids = np.zeros((len(sentences), 8), np.int32)
  ids[:, :2] = [101, 102]
  return ids, (ids > 0).astype(np.int32)


def main(argv: list[str] | None = None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                 help="parallel samples (num_parallel_calls); the cores the pipeline may use")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--batches", type=int, default=30, help="timed batches (after 3 warm-up ones)")
  p.add_argument("--sequences", type=int, default=4, help="per source")
  p.add_argument("--frames", type=int, default=60, help="per sequence")
  p.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" /
                                         "lgtrack_b256.py"))
  p.add_argument("--workdir", default="", help="where to generate the frames (default: a temp "
                 "dir, deleted afterwards)")
  p.add_argument("--step_ms", type=float, default=250.0,
                 help="accelerator step time to report the cores needed for")
  args = p.parse_args(argv)

  from input_pipeline import pipeline  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  with tempfile.TemporaryDirectory() as tmp:
    out = Path(args.workdir or tmp)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train = generate(out, args.sequences, args.frames)
    gen_s = time.perf_counter() - t0
    config = config_io.load(args.config)
    config.unlock()
    config.data.train = tuple(train)
    config.data.num_parallel_calls = args.threads
    config.data.index_cache = False
    config.model.text.max_len = 8
    index = mixture.build_index(config, tokenize)
    ds = pipeline.make_dataset(index, config, seed=0, start_index=0, process_index=0,
                               process_count=1, local_batch=args.batch)
    it = iter(ds)
    for _ in range(3):
      next(it)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
      batch = next(it)
    tf.nest.map_structure(lambda t: t.numpy(), batch)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0  # all threads of this process
  samples = args.batches * args.batch
  rate = samples / seconds
  # Per core = per CPU-second the process really used: robust to other load on the machine,
  # which makes samples/s / threads an underestimate.
  per_core = samples / cpu_seconds
  result = {
      "benchmark": "input_pipeline",
      "frame": f"{W}x{H}",
      "template": config.data.template_size,
      "search": config.data.search_size,
      "mode_probs": list(config.data.mode_probs),
      "mixture": {name: ratio for name, _, ratio, _ in train},
      "threads": args.threads,
      "batch": args.batch,
      "samples_per_s": round(rate, 1),
      "cpu_s": round(cpu_seconds, 2),
      "wall_s": round(seconds, 2),
      "samples_per_s_per_core": round(per_core, 1),
      "samples_per_s_per_thread": round(rate / args.threads, 1),
      # Cores a host needs so that a global batch of `batch` per `step_ms` step never waits.
      f"cores_for_batch_{args.batch}_every_{args.step_ms:g}ms": round(
          args.batch / (args.step_ms / 1000) / per_core, 1),
      "generate_s": round(gen_s, 1),
  }
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
