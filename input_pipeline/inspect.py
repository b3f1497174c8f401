"""Look at a dataset the way training will: counts, a sample sentence, and a grid of pairs.

  python -m input_pipeline.inspect --dataset lasot --data_root /data/lasot [--split train]
      [--out pairs.png] [--pairs 8] [--seed 0] [--config configs/lgtrack_b256.py]

Reads the split through the same reader (and index cache) as training and evaluation, prints a
few readable lines (including what is missing from a partial download) and, as its LAST line,
one JSON object with at least `sequences`, `frames`, `absent_frames` and `sample_sentence`. It
then writes a PNG grid of training pairs drawn by the real tf.data pipeline: per row the
template crop (blank in language-only mode) and the search crop with the target box drawn. The
grid needs TensorFlow; `--out ''` skips it.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw

from input_pipeline import sources
from lgtrack_jax import config_io

_MODES = {0: "box", 1: "language", 2: "box+language"}


def summarize(split: sources.Split) -> dict:
  """The JSON-ready statistics of a `sources.Split`."""
  seqs = split.sequences
  sentence = next((s.sentence for s in seqs if s.sentence), None)
  return {
      "dataset": split.dataset,
      "split": split.split,
      "root": split.root,
      "sequences": len(seqs),
      "frames": int(sum(len(s) for s in seqs)),
      "absent_frames": int(sum(int(np.count_nonzero(s.absent)) for s in seqs)),
      "with_sentence": int(sum(s.sentence is not None for s in seqs)),
      "sample_sentence": sentence,
      "partial": split.partial,
      "expected_sequences": split.expected,
      "missing_sequences": len(split.missing),
      "missing_parts": list(split.missing_parts),
      "from_cache": split.cached,
  }


def hash_tokenize(max_len: int):
  """A stand-in tokenizer ([CLS] + crc32 word ids + [SEP]): the grid shows no text."""

  def tokenize(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((len(sentences), max_len), np.int32)
    mask = np.zeros((len(sentences), max_len), np.int32)
    for r, s in enumerate(sentences):
      toks = ([101] + [1000 + zlib.crc32(w.encode()) % 20000 for w in s.split()])[:max_len - 1]
      toks.append(102)
      ids[r, :len(toks)] = toks
      mask[r, :len(toks)] = 1
    return ids, mask

  return tokenize


def _draw_box(image: Image.Image, box_cxcywh: np.ndarray, colour: tuple[int, int, int]) -> None:
  """Draws a normalised cx, cy, w, h box on `image` (in place)."""
  size = np.array(image.size * 2, np.float64)
  cx, cy, w, h = box_cxcywh
  x0, y0, x1, y1 = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * size
  ImageDraw.Draw(image).rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=2)


def pairs_grid(split: sources.Split, config, num_pairs: int, seed: int) -> Image.Image:
  """num_pairs training samples of the split, one row each: template | search with boxes."""
  from input_pipeline import pipeline, sampler  # pylint: disable=import-outside-toplevel
  d = config.data
  index = sampler.build_index(split.sequences, hash_tokenize(config.model.text.max_len),
                              config.model.text.max_len,
                              grounding=split.dataset in sources.IMAGE_DATASETS)
  ds = pipeline.make_dataset(index, config, seed=seed, start_index=0, process_index=0,
                             process_count=1, local_batch=num_pairs)
  batch = {k: v.numpy() for k, v in next(iter(ds)).items()}
  choices = pipeline.sample_choices(index, config, seed, batch["index"])
  sentences = {s.name: s.sentence for s in split.sequences}
  ts = d.search_size
  caption = 28
  grid = Image.new("RGB", (2 * ts + 12, num_pairs * (ts + caption + 6)), (255, 255, 255))
  for r in range(num_pairs):
    top = r * (ts + caption + 6)
    template = Image.fromarray(batch["template"][r]).resize((ts, ts), Image.NEAREST)
    search = Image.fromarray(batch["search"][r])
    mode = int(batch["mode"][r])
    if mode != 1:
      _draw_box(template, batch["template_box"][r], (255, 200, 0))
    _draw_box(search, batch["search_box"][r], (0, 255, 0))
    grid.paste(template, (0, top + caption))
    grid.paste(search, (ts + 12, top + caption))
    name = index.seq_names[int(choices["seq"][r])]
    text = f"{name} [{_MODES[mode]}] {sentences.get(name) or '(no sentence)'}"
    ImageDraw.Draw(grid).text((2, top + 2), text[:2 * ts // 6], fill=(0, 0, 0))
  return grid


def main(argv: list[str] | None = None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--dataset", required=True, choices=sorted(sources.READERS))
  p.add_argument("--data_root", required=True)
  p.add_argument("--split", default="train")
  p.add_argument("--out", default=None, help="PNG path (default inspect_<dataset>_<split>.png; "
                 "'' = no grid)")
  p.add_argument("--pairs", type=int, default=8)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--config", default="", help="a configs/*.py file for crop sizes and jitter "
                 "(default: the shared defaults of configs/common.py)")
  p.add_argument("--no_cache", action="store_true", help="parse every file, ignore the cache")
  p.add_argument("--cache_dir", default=None)
  args = p.parse_args(argv)

  split = sources.scan(args.dataset, args.data_root, args.split, cache=not args.no_cache,
                       cache_dir=args.cache_dir)
  stats = summarize(split)
  print(f"{args.dataset} {args.split}: {stats['sequences']} sequences, {stats['frames']} frames, "
        f"{stats['absent_frames']} absent")
  if split.partial:
    print(f"PARTIAL: {split.describe_partial()}")
  out = f"inspect_{args.dataset}_{args.split}.png" if args.out is None else args.out
  stats["grid"] = None
  if out:
    try:
      grid = pairs_grid(split, _load_config(args.config), args.pairs, args.seed)
    except (ImportError, sources.DataError) as e:
      print(f"no grid: {e}")
    else:
      grid.save(out)
      stats["grid"] = out
      print(f"wrote {out}")
  print(json.dumps(stats))
  sys.stdout.flush()
  return stats


def _load_config(path: str):
  if not path:
    from configs import common  # pylint: disable=import-outside-toplevel
    return common.base_config()
  return config_io.load(path)


if __name__ == "__main__":
  main()
