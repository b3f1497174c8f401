"""LGTrack as a TraX server, the protocol the VOT toolkit (vot-toolkit) runs trackers over.

  python -m lgtrack_jax.integrations.vot --config /abs/configs/lgtrack_b256.py \
      --checkpoint /abs/runs/x [--mode bbox|nl_bbox] [--sentence "the red car"]

Needs `vot-trax` (`pip install vot-trax`, or the `vot` extra). The server announces one object,
rectangle regions and the color channel as image paths (`trax.Server`); the client (the toolkit,
or `trax.client.Client`) then sends `initialize` (the first frame's path and region) and one
`frame` request per later frame, and the server answers each with the rectangle (x, y, w, h,
0-based pixels, passed to and from the API unchanged, as OSTrack's VOT wrappers do) and, after
the first frame, a per-object `confidence` property (the API's `Tracker.confidence`), which the
toolkit keeps in its trajectories. A new `initialize` restarts the tracker on another sequence
without restarting the process, so the compiled functions are reused. libtrax speaks over
stdin/stdout (or the socket / file descriptors named by TRAX_SOCKET / TRAX_IN / TRAX_OUT), so
everything Python prints goes to stderr.

Sentence, hence mode: `--sentence`; else `--sentence_file`, read at each `initialize`, where
`{sequence_dir}` stands for the sequence's folder (that of its first frame, or its parent when that
folder is `color`, as in a VOT workspace: `--sentence_file '{sequence_dir}/language.txt'`); else
mode 'bbox'. A user error (a missing checkpoint, config, sentence file or frame) is one line on
stderr and exit status 1; a session already started is first ended with that reason.
docs/integrations_vot.md gives the toolkit's `trackers.ini` entry.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from absl import app, flags
import numpy as np

from lgtrack_jax import cli

PROG = "lgtrack_jax.integrations.vot"
_FRAME_FOLDERS = ("color",)  # a VOT workspace keeps a sequence's frames in <sequence>/color/


def import_trax() -> Any:
  """The `trax` package (vot-trax), or a one-line ImportError saying how to install it."""
  try:
    import trax  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ImportError(f"{PROG} needs the TraX bindings: pip install vot-trax "
                      "(or lgtrack_jax[vot])") from None
  except OSError as e:  # the package is there but its libtrax.so does not load
    raise ImportError(f"{PROG}: vot-trax's libtrax does not load ({e})") from None
  return trax


def sequence_dir(frame_path: str) -> str:
  """The folder of a sequence, from a frame's path: the frame's folder, or its parent when the
  folder is one of `_FRAME_FOLDERS`."""
  folder = os.path.dirname(os.path.abspath(frame_path))
  return os.path.dirname(folder) if os.path.basename(folder) in _FRAME_FOLDERS else folder


def read_sentence(pattern: str, frame_path: str) -> str:
  """The sentence in `pattern` ('{sequence_dir}' filled in from the first frame's path): the
  file's text with whitespace runs collapsed; a ValueError when it is missing or empty."""
  path = pattern.replace("{sequence_dir}", sequence_dir(frame_path))
  if not os.path.isfile(path):
    raise ValueError(f"sentence file {path} does not exist")
  with open(path, encoding="utf-8") as f:
    sentence = " ".join(f.read().split())
  if not sentence:
    raise ValueError(f"sentence file {path} is empty")
  return sentence


def resolve_mode(mode: str | None, sentence: str | None, sentence_file: str | None) -> str:
  """The tracking mode from the flags: an explicit one must agree with the sentence flags."""
  has_sentence = bool(sentence and sentence.strip()) or bool(sentence_file)
  if sentence is not None and not sentence.strip():
    raise ValueError("--sentence is empty")
  if mode is None:
    return "nl_bbox" if has_sentence else "bbox"
  if mode == "nl_bbox" and not has_sentence:
    raise ValueError("--mode nl_bbox needs --sentence or --sentence_file")
  if mode == "bbox" and has_sentence:
    raise ValueError("--mode bbox takes no sentence: drop --sentence / --sentence_file")
  return mode


def load_image(image: Any) -> tuple[np.ndarray, str]:
  """A TraX path image -> ([H, W, 3] uint8 RGB, its path); a ValueError when it cannot be read."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  path = image.path()
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB")), path
  except OSError as e:  # missing, unreadable, or not an image (UnidentifiedImageError)
    raise ValueError(f"frame {path} cannot be read ({type(e).__name__})") from None


def region_box(trax: Any, region: Any) -> np.ndarray:
  """A TraX region -> [4] float64 x, y, w, h: a rectangle's bounds, a polygon's bounding box."""
  if region.type == trax.Region.RECTANGLE:
    return np.asarray(region.bounds(), np.float64)
  if region.type == trax.Region.POLYGON:
    points = np.asarray(list(region), np.float64)  # [P, 2] x, y
    lo, hi = points.min(0), points.max(0)
    return np.concatenate([lo, hi - lo])
  raise ValueError(f"initial region of type {region.type!r}: expected a rectangle")


def serve(tracker: Any, trax: Any, server: Any, sentence: str | None,
          sentence_file: str | None) -> int:
  """Answers the client's requests until it quits. Returns the number of frames tracked."""
  frames = 0
  started = False
  while True:
    request = server.wait()
    if request.type == trax.TraxStatus.QUIT:
      return frames
    image = request.image.get(trax.ImageChannel.COLOR) or next(iter(request.image.values()))
    frame, path = load_image(image)
    if request.type == trax.TraxStatus.INITIALIZE:
      if len(request.objects) != 1:
        raise ValueError(f"initialize with {len(request.objects)} objects: this server tracks one")
      text = sentence
      if tracker.mode.reads_text and text is None:
        text = read_sentence(sentence_file, path)
      box = tracker.initialize(frame, box=region_box(trax, request.objects[0][0]), sentence=text)
      properties = {}  # no confidence on the first frame: its box is the given one
      started = True
    else:
      if not started:
        raise ValueError("frame request before initialize")
      box = tracker.track(frame)
      properties = {"confidence": f"{tracker.confidence:.6f}"}
    x, y, w, h = (float(v) for v in box)
    server.status([(trax.Rectangle.create(x, y, w, h), properties)])
    frames += 1


def run(config: str, checkpoint: str | None, weights: str | None, mode: str | None,
        sentence: str | None, sentence_file: str | None, overrides: list[str]) -> int:
  """Loads the tracker, then serves one TraX session. Returns the number of frames tracked."""
  if not config:
    raise ValueError("--config is required")
  if bool(checkpoint) == bool(weights):
    raise ValueError("give one of --checkpoint (a train workdir) or --weights (a converted "
                     "weights directory)")
  if not os.path.isfile(config.partition(":")[0]):  # these two before JAX starts: fail at once
    raise FileNotFoundError(f"config file {config.partition(':')[0]} does not exist")
  where = checkpoint or weights
  if not os.path.isdir(where):
    raise FileNotFoundError(f"{'checkpoint' if checkpoint else 'weights'} directory {where} "
                            "does not exist")
  mode = resolve_mode(mode, sentence, sentence_file)
  trax = import_trax()
  from lgtrack_jax.tracking import online  # pylint: disable=import-outside-toplevel
  # Loaded before the handshake: a bad config or checkpoint ends the process before any session.
  tracker = online.load_tracker(config, checkpoint=checkpoint, weights=weights, mode=mode,
                                overrides=overrides)
  try:
    server = trax.Server([trax.Region.RECTANGLE], [trax.Image.PATH], [trax.ImageChannel.COLOR],
                         tracker_name="LGTrack", tracker_description=f"lgtrack_jax, mode {mode}",
                         tracker_family="lgtrack_jax")
    try:
      frames = serve(tracker, trax, server, sentence, sentence_file)
    except (ValueError, FileNotFoundError) as e:
      try:
        server.quit(reason=" ".join(str(e).split()))  # the client learns why the session ended
      except trax.TraxException:
        pass  # the client is gone: the error itself is what to report
      raise
    server.quit()
  except trax.TraxException as e:  # no client, or it went away: a one-line error too
    raise ConnectionError(f"TraX session failed: {' '.join(str(e).split())}") from None
  return frames


def define_flags() -> dict[str, Any]:
  """The server's command line, defined only when it runs as a program (`__main__`): tests and
  other code import this module's functions without claiming flag names such as --config.
  (The definitions below repeat one shape, one flag each: a duplicate finder's false pair.)"""
  config = flags.DEFINE_string(
      "config", None, "Config file ('configs/x.py' or 'configs/x.py:arg'); an absolute path under "
      "the VOT toolkit, which starts trackers in a temporary directory.")
  checkpoint = flags.DEFINE_string("checkpoint", None,
                                   "Train workdir to load the latest params of.")
  weights = flags.DEFINE_string(
      "weights", None, "Converted weights directory (`python -m lgtrack_jax.weights.convert`); "
      "instead of --checkpoint.")
  mode = flags.DEFINE_enum(
      "mode", None, ["bbox", "nl_bbox"], "Initialisation: box only, or box + sentence. Default: "
      "nl_bbox when a sentence is given (--sentence / --sentence_file), else bbox.")
  sentence = flags.DEFINE_string("sentence", None,
                                 "The target's description, for every sequence.")
  sentence_file = flags.DEFINE_string(
      "sentence_file", None, "Text file holding the sentence, read at each initialisation; "
      "'{sequence_dir}' in it stands for the sequence's folder.")
  override = flags.DEFINE_multi_string("override", [], "Config override FIELD=VALUE, e.g. "
                                        "eval.frame_bucket=64 (repeatable).")
  return {"config": config, "checkpoint": checkpoint, "weights": weights, "mode": mode,
          "sentence": sentence, "sentence_file": sentence_file, "overrides": override}


def main(argv: list[str], flag_values: dict[str, Any]) -> None:
  # libtrax owns file descriptor 1 when it talks over stdio: Python's prints must not reach it.
  sys.stdout = sys.stderr
  try:
    if len(argv) > 1:
      raise ValueError(f"unexpected arguments: {argv[1:]}")
    run(**{name: flag.value for name, flag in flag_values.items()})
  except (ValueError, FileNotFoundError, ImportError, ConnectionError) as e:
    cli.fail(PROG, e, status=1)


if __name__ == "__main__":
  _FLAGS = define_flags()
  app.run(lambda argv: main(argv, _FLAGS))
