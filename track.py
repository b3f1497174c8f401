r"""Tracks one target through your own video: a boxed video, a boxes file and a JSON summary.

  python track.py --config configs/tiny.py --checkpoint runs/demo/train --video clip.mp4 \
      --text "the red square" --box 40,32,20,20 --out out/clip.mp4 --boxes out/clip.txt
  python track.py ... --video 'seq/img/*.jpg' --text "the red square"   # no box: mode nl
  python track.py ... --video frames/ --box "$(head -1 groundtruth.txt)" --box_base 1

--video is a video file (mp4, avi, webm, mkv, mov: anything FFmpeg decodes), a folder of images
(jpg, png, bmp) or a glob of them; frames are decoded one at a time. --box is x,y,w,h of the target
in the first frame, 0-based pixels (--box_base 1 for 1-based boxes such as LaSOT's groundtruth.txt).
Mode: --box and --text give nl_bbox, --box alone bbox, --text alone nl (the model finds the target
from the sentence in the first frame); --mode overrides. Writes
  --out     H.264 video, each frame with its box, index, score and the sentence drawn on it
            (the input's frame rate, else 30; an odd side is padded by one black pixel);
  --boxes   one `x,y,w,h` line per frame, 0-based pixels, 4 decimals: the benchmark toolkits'
            results format (the first line is the given box, or in mode nl the grounded one);
  --summary JSON (default: --out with a .json suffix): per-frame scores (null on the first
            frame) and tracker seconds, fps (from the third frame on: the first two compile), the
            arguments, the mode and the first box.
A bad input (missing, undecodable, empty; a bad or missing --box) exits with one line on stderr
and status 2. Config overrides work as in eval.py: --config.eval.frame_bucket=64.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import av
from absl import app, flags, logging
from ml_collections import config_flags

from lgtrack_jax import cli, modes
from lgtrack_jax.modes import Mode
from lgtrack_jax.tracking import video

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                          lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Train workdir to load the latest params of.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Converted weights directory; instead of "
                               "--checkpoint.")
_VIDEO = flags.DEFINE_string("video", None, "Video file, folder of images, or glob of images.")
_TEXT = flags.DEFINE_string("text", None, "Sentence naming the target.")
_BOX = flags.DEFINE_string("box", None, "x,y,w,h of the target in the first frame (commas or "
                           "spaces between the numbers).")
_BOX_BASE = flags.DEFINE_integer("box_base", 0, "1 if --box counts pixels from 1 (LaSOT's "
                                 "groundtruth.txt): x and y are shifted by -1.")
_MODE = flags.DEFINE_enum("mode", None, modes.NAMES,
                          "Initialisation; default: nl_bbox with --box and --text, bbox with "
                          "--box only, nl with --text only.")
_OUT = flags.DEFINE_string("out", None, "Output video (.mp4).")
_BOXES = flags.DEFINE_string("boxes", None, "Output boxes file (.txt).")
_SUMMARY = flags.DEFINE_string("summary", None, "Output JSON summary (default: --out, .json).")

_PROG = "track.py"


class _UserError(Exception):
  """Bad arguments: reported as one line, status 2."""


def _quiet_orbax() -> None:
  if flags.FLAGS["verbosity"].using_default_value:
    # Orbax logs each restore at INFO (app.run's default): noise around the progress bar.
    flags.FLAGS.verbosity = logging.WARNING


def parse_box(text: str, base: int = 0) -> tuple[float, float, float, float]:
  """'x,y,w,h' (commas and/or spaces) -> 0-based (x, y, w, h); `base` 1 shifts x and y by -1."""
  parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
  try:
    x, y, w, h = (float(p) for p in parts)
  except ValueError:
    raise _UserError(f"--box={text!r}: expected x,y,w,h (four numbers, e.g. 40,32,20,20)"
                     ) from None
  return x - base, y - base, w, h


def _resolve_mode(mode: str | None, text: str | None, box: str | None) -> Mode:
  if mode is None:
    mode = Mode.BBOX if text is None else Mode.NL if box is None else Mode.NL_BBOX
  mode = Mode.parse(mode)
  if mode.needs_box and box is None:
    raise _UserError(f"mode {mode} needs --box x,y,w,h (the target in the first frame)")
  if mode.reads_text and text is None:
    raise _UserError(f"mode {mode} needs --text (a sentence naming the target)")
  return mode


def _run() -> dict:
  """Checks the arguments and the input before loading the model; then tracks, drawing and
  writing as it goes. Returns the summary."""
  # pylint: disable=too-many-locals
  for name, value in (("config", _CONFIG.value), ("video", _VIDEO.value), ("out", _OUT.value),
                      ("boxes", _BOXES.value)):
    if value is None:
      raise _UserError(f"--{name} is required")
  if (_CHECKPOINT.value is None) == (_WEIGHTS.value is None):
    raise _UserError("give one of --checkpoint (a train workdir) or --weights (a converted "
                     "weights directory)")
  if _BOX_BASE.value not in (0, 1):
    raise _UserError(f"--box_base={_BOX_BASE.value}: expected 0 or 1")
  text = _TEXT.value if _TEXT.value and _TEXT.value.strip() else None
  mode = _resolve_mode(_MODE.value, text, _BOX.value)
  box = parse_box(_BOX.value, _BOX_BASE.value) if mode.needs_box else None
  frames, input_fps = video.read_frames(_VIDEO.value)
  first = next(frames, None)
  if first is None:
    raise _UserError(f"{_VIDEO.value}: no frames")

  # JAX starts only once the input is known good: bad arguments fail in well under a second.
  from lgtrack_jax.tracking import online  # pylint: disable=import-outside-toplevel
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  if box is not None:
    online.check_box(box, first.shape[:2])
  tracker = online.load_tracker(_CONFIG.value, checkpoint=_CHECKPOINT.value,
                                weights=_WEIGHTS.value, mode=mode)

  summary_path = _SUMMARY.value or os.path.splitext(_OUT.value)[0] + ".json"
  for path in (_BOXES.value, summary_path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  scores: list[float | None] = []
  seconds: list[float] = []
  start = time.perf_counter()
  with (video.VideoWriter(_OUT.value, input_fps or 30) as writer,
        open(_BOXES.value, "w", encoding="utf-8") as boxes_file,
        tqdm(total=frames.total, unit="frame", dynamic_ncols=True) as bar):
    frame, index = first, 0
    while frame is not None:
      t0 = time.perf_counter()
      if index == 0:
        result = tracker.initialize(frame, box=box, sentence=text)
        first_box = [float(v) for v in result]
      else:
        result = tracker.track(frame)
      seconds.append(time.perf_counter() - t0)
      scores.append(tracker.confidence)
      boxes_file.write(",".join(f"{float(v):.4f}" for v in result) + "\n")
      writer.write(video.draw(frame, result, text, tracker.confidence, index=index))
      bar.update(1)
      if tracker.confidence is not None:
        bar.set_postfix(score=f"{tracker.confidence:.2f}", refresh=False)
      frame, index = next(frames, None), index + 1
  wall = time.perf_counter() - start
  frames.close()

  # The first two frames compile the model's two functions (initialize, then track): the speed
  # is that of the frames after them, where there are any.
  steady = seconds[2:] if index > 2 else seconds[1:]
  summary = {
      "video": _VIDEO.value, "out": _OUT.value, "boxes": _BOXES.value, "mode": mode,
      "sentence": text, "first_box": first_box,
      "first_box_source": "given" if mode.needs_box else "grounded",
      "frames": index, "frame_size": [int(first.shape[1]), int(first.shape[0])],
      "input_fps": input_fps, "output_fps": float(writer.rate),
      "fps": len(steady) / sum(steady) if steady and sum(steady) > 0 else None,
      "wall_seconds": wall, "wall_fps": index / wall,
      "scores": scores, "seconds": seconds,
      "args": {"config": _config_arg(), "checkpoint": _CHECKPOINT.value,
               "weights": _WEIGHTS.value, "video": _VIDEO.value, "text": _TEXT.value,
               "box": _BOX.value, "box_base": _BOX_BASE.value, "mode": _MODE.value,
               "out": _OUT.value, "boxes": _BOXES.value, "summary": _SUMMARY.value},
      "argv": sys.argv[1:],
  }
  with open(summary_path, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
    f.write("\n")
  summary["summary"] = summary_path
  return summary


def _config_arg() -> str:
  # The flag's value is the loaded ConfigDict; the file as given is what a rerun needs.
  return config_flags.get_config_filename(flags.FLAGS["config"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    cli.fail(_PROG, f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    summary = _run()
  except (_UserError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError,
          av.FFmpegError) as e:
    cli.fail(_PROG, e)
  speed = f", {summary['fps']:.1f} frames/s" if summary["fps"] else ""
  print(f"{summary['frames']} frames ({summary['mode']}){speed} -> {summary['out']}, "
        f"{summary['boxes']}, {summary['summary']}")


if __name__ == "__main__":
  # transformers warns at import that PyTorch is absent (only its tokenizers are used).
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
  app.run(main, flags_parser=cli.flags_parser(_PROG, _CONFIG, after=_quiet_orbax))
