"""Deterministic synthetic language-tracking data in the LaSOT layout (docs/design.md section 10).

Each sequence shows 2-4 coloured shapes moving over a smooth, low-contrast background. The target
is named by "the <colour> <shape>" (plus "moving <direction>" when its net motion is clear); every
distractor shares exactly one of colour and shape with it, so neither word alone picks it out.
About 30% of sequences have one short absent span: a full occlusion by an opaque patch, or the
target leaving the frame. Data is written with the LaSOT conventions so the real reader
(`input_pipeline.sources.lasot`) is what reads it back.

Everything is a pure function of (seed, split, index): the same arguments give byte-identical
files.

  python -m input_pipeline.synthetic --out DIR --num_train N --num_test M --num_frames F --seed S
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import io
import json
import math
import os
import shutil
import time

import numpy as np
from PIL import Image, ImageDraw

from input_pipeline.sources.lasot import FRAME_PATTERN

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
# Saturated colours far apart in RGB, and far from the muted background, so that JPEG and chroma
# blur at 14 px still leave them unambiguous.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 175, 50),
    "blue": (40, 80, 240),
    "yellow": (245, 225, 30),
    "purple": (155, 50, 215),
    "orange": (250, 140, 10),
    "white": (248, 248, 248),
    "cyan": (30, 220, 235),
}
SPLITS = ("train", "test")
JPEG_QUALITY = 90
FORMAT_VERSION = 1  # bump when the output for given arguments changes

_BASE_SIZE = (20.0, 28.0)  # px; times the scale range below gives sizes of about 14-40 px
_MAX_LOG_SCALE = (0.1, 0.32)  # exp(+-0.32) stays inside the 0.7-1.4 scale factor range
_SCALE_PERIOD = (60.0, 200.0)  # frames
_SPEED = (0.8, 2.5)  # initial px/frame
_SPEED_LIMITS = (0.5, 3.0)
_ACCEL_STD = 0.15  # px/frame^2: small random acceleration keeps motion smooth
_EXIT_SPEED = (3.0, 4.0)  # px/frame while leaving / re-entering the frame
_ABSENT_LEN = (5, 12)  # frames, inclusive
_FIRST_ABSENT = 10  # never absent before this frame
_MIN_FRAMES_OCCLUSION = 30
_MIN_FRAMES_OUT_OF_VIEW = 75  # leaving, staying out and coming back takes under 60 frames
_DIRECTION_MIN_FRACTION = 0.25  # net displacement >= this share of the image side ...
_DIRECTION_MIN_RATIO = 2.0  # ... and this many times the displacement on the other axis


@dataclasses.dataclass(frozen=True)
class Track:
  """One moving shape.

  Attributes:
    shape: one of SHAPES.
    colour: a key of PALETTE.
    centers: [N, 2] float64 x, y centre in 0-based continuous pixel coordinates.
    sizes: [N] float64 side of the shape's bounding square in pixels.
  """

  shape: str
  colour: str
  centers: np.ndarray
  sizes: np.ndarray


@dataclasses.dataclass(frozen=True)
class Occluder:
  """An opaque patch drawn over everything in frames [start, stop).

  Attributes:
    start, stop: frame range.
    box: (left, top, right, bottom) integer pixels, right/bottom exclusive.
    colour: RGB fill.
  """

  start: int
  stop: int
  box: tuple[int, int, int, int]
  colour: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class SequencePlan:
  """Everything needed to render one sequence; `render_frame` turns it into images.

  Attributes:
    target: the described shape, drawn on top of the distractors.
    distractors: drawn in this order, beneath the target.
    background: [H, W, 3] uint8.
    occluder: the full-occlusion patch, or None.
    sentence: the language description.
  """

  target: Track
  distractors: tuple[Track, ...]
  background: np.ndarray
  occluder: Occluder | None
  sentence: str


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The random stream of one sequence: independent across seeds, splits and indices."""
  return np.random.default_rng([seed, SPLITS.index(split), index])


def _smooth_noise(rng: np.random.Generator, cells: int, width: int,
                  height: int) -> np.ndarray:
  """[H, W] float64 smooth noise of about unit amplitude, `cells` blobs across the width."""
  grid = rng.normal(size=(cells * height // width + 2, cells + 2)).astype(np.float32)
  # Bicubic upsampling of a coarse grid: smooth noise without a per-pixel Python loop.
  up = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
  return np.asarray(up, np.float64)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
  """[H, W, 3] uint8 smooth low-contrast texture: muted base colour, gradient, noise octaves.

  The texture is mostly in brightness with only a faint tint, so no background blob looks like
  a palette colour.
  """
  base = rng.uniform(55.0, 140.0) + rng.uniform(-12.0, 12.0, size=3)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  gx, gy = rng.uniform(-25.0, 25.0, size=2)
  luma = gx * (xx / width - 0.5) + gy * (yy / height - 0.5)
  luma += 14.0 * _smooth_noise(rng, 4, width, height) + 6.0 * _smooth_noise(rng, 12, width, height)
  luma += rng.normal(0.0, 1.5, size=luma.shape)
  tint = np.stack([_smooth_noise(rng, 3, width, height) for _ in range(3)], axis=-1)
  img = base + luma[..., None] + 5.0 * tint
  return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _scales(rng: np.random.Generator, n: int) -> np.ndarray:
  """[N] float64 slow smooth scale factor within about 0.7-1.4."""
  amplitude = rng.uniform(*_MAX_LOG_SCALE)
  period = rng.uniform(*_SCALE_PERIOD)
  phase = rng.uniform(0.0, 2.0 * np.pi)
  t = np.arange(n, dtype=np.float64)
  return np.exp(amplitude * np.sin(2.0 * np.pi * t / period + phase))


def _limit_speed(v: np.ndarray) -> np.ndarray:
  """[2] velocity rescaled so its speed lies within _SPEED_LIMITS."""
  speed = math.hypot(v[0], v[1])
  lo, hi = _SPEED_LIMITS
  if speed < 1e-6:
    return np.array([lo, 0.0])
  return v * (min(max(speed, lo), hi) / speed)


def _simulate(rng: np.random.Generator, start: np.ndarray, sizes: np.ndarray,
              image_size: tuple[int, int], exit_at: int | None = None,
              hold: int = 0) -> np.ndarray:
  """Moves a shape with smooth random acceleration, bouncing off the borders.

  Args:
    rng: the sequence's random stream.
    start: [2] float64 centre at frame 0.
    sizes: [N] float64 shape sizes (the bounce keeps the whole shape inside the image).
    image_size: (width, height).
    exit_at: if given, from this frame the shape heads for the nearest border, leaves the image,
      keeps going for `hold` frames once fully outside, then comes back and resumes bouncing.
    hold: see `exit_at`.

  Returns:
    [N, 2] float64 centres.
  """
  n = sizes.shape[0]
  dims = np.asarray(image_size, np.float64)
  pos = start.astype(np.float64).copy()
  angle = rng.uniform(0.0, 2.0 * np.pi)
  vel = rng.uniform(*_SPEED) * np.array([np.cos(angle), np.sin(angle)])
  exit_speed = rng.uniform(*_EXIT_SPEED)
  mode, axis, sign, held = "normal", 0, 1.0, 0
  centers = np.empty((n, 2), np.float64)
  for t in range(n):
    centers[t] = pos
    if t + 1 == n:
      break
    noise = rng.normal(0.0, _ACCEL_STD, size=2)  # drawn every frame: one stream for all modes
    half = sizes[t + 1] / 2.0
    if mode == "normal" and exit_at is not None and t + 1 >= exit_at:
      # The nearest border keeps the way out short.
      gaps = np.array([pos[0], dims[0] - pos[0], pos[1], dims[1] - pos[1]])
      side = int(np.argmin(gaps))
      mode, axis, sign = "exit", side // 2, (-1.0 if side % 2 == 0 else 1.0)
      # Fast enough to be out within ~15 frames on any image size, so the span fits.
      exit_speed = max(exit_speed, (gaps[side] + half) / 15.0)
      exit_at = None
    if mode == "normal":
      vel = _limit_speed(vel + noise)
      free_axes = (0, 1)
    else:
      vel[axis] = sign * exit_speed if mode == "exit" else -sign * exit_speed
      free_axes = (1 - axis,)
    pos = pos + vel
    if mode == "exit":
      fully_out = (pos[axis] + half < -1.0) if sign < 0 else (pos[axis] - half > dims[axis] + 1.0)
      held = held + 1 if fully_out else held
      if held > hold:
        mode = "return"
    elif mode == "return" and half <= pos[axis] <= dims[axis] - half:
      mode = "normal"
    for a in free_axes:
      if pos[a] - half < 0.0:
        pos[a], vel[a] = half, abs(vel[a])
      elif pos[a] + half > dims[a]:
        pos[a], vel[a] = dims[a] - half, -abs(vel[a])
  return centers


def _unit_star(points: int = 5, inner: float = 0.5) -> tuple[tuple[float, float], ...]:
  ang = -np.pi / 2 + np.arange(2 * points) * np.pi / points
  rad = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
  return tuple((float(r * np.cos(t)), float(r * np.sin(t))) for r, t in zip(rad, ang, strict=True))


_ARM = 0.36  # cross arm half-thickness: thick enough to stay a cross at 14 px
# Polygon vertices on the [-1, 1] square, upright: never rotated, so a diamond stays a diamond.
_UNIT_POLYGONS: dict[str, tuple[tuple[float, float], ...]] = {
    "square": ((-1, -1), (1, -1), (1, 1), (-1, 1)),
    "triangle": ((0, -1), (1, 1), (-1, 1)),
    "diamond": ((0, -1), (1, 0), (0, 1), (-1, 0)),
    "cross": ((-_ARM, -1), (_ARM, -1), (_ARM, -_ARM), (1, -_ARM), (1, _ARM), (_ARM, _ARM),
              (_ARM, 1), (-_ARM, 1), (-_ARM, _ARM), (-1, _ARM), (-1, -_ARM), (-_ARM, -_ARM)),
    "star": _unit_star(),
}


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, size: float,
          fill: int | tuple[int, int, int]) -> None:
  """Draws a shape whose bounding square has side `size`, centred at (cx, cy)."""
  if shape == "circle":
    h = size / 2.0
    draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=fill)
  else:
    h = size / 2.0
    draw.polygon([(cx + h * x, cy + h * y) for x, y in _UNIT_POLYGONS[shape]], fill=fill)


def _footprint(shape: str, cx: float, cy: float, size: float,
               image_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
  """Tight (left, top, right, bottom) box of the shape's pixels inside the image, or None.

  The shape is rasterised alone exactly as `render_frame` draws it, so the box is exact (and
  clipped to the image) even where the target overlaps a distractor of the same colour.
  """
  mask = Image.new("L", image_size, 0)
  _draw(ImageDraw.Draw(mask), shape, cx, cy, size, 255)
  return mask.getbbox()


def _place(rng: np.random.Generator, size: float, image_size: tuple[int, int],
           avoid: tuple[float, float, float, float] | None = None) -> np.ndarray:
  """[2] centre keeping the shape inside the image, away from box `avoid` when possible."""
  half = size / 2.0 + 1.0
  for _ in range(50):
    c = np.array([rng.uniform(half, image_size[0] - half), rng.uniform(half, image_size[1] - half)])
    if avoid is None:
      return c
    left, top, right, bottom = avoid
    if c[0] + half < left or c[0] - half > right or c[1] + half < top or c[1] - half > bottom:
      return c
  return c


def _direction(centers: np.ndarray, image_size: tuple[int, int]) -> str | None:
  """The dominant direction of the net displacement, or None when it is not clear."""
  d = centers[-1] - centers[0]
  axis = int(np.argmax(np.abs(d)))
  if (abs(d[axis]) < _DIRECTION_MIN_FRACTION * image_size[axis]
      or abs(d[axis]) < _DIRECTION_MIN_RATIO * abs(d[1 - axis])):
    return None
  return (("left", "right"), ("up", "down"))[axis][int(d[axis] > 0)]


def plan_sequence(seed: int, split: str, index: int, num_frames: int = 100,
                  image_size: tuple[int, int] = (192, 144)) -> SequencePlan:
  """Draws every random choice of one sequence; a pure function of its arguments.

  Args:
    seed: dataset seed.
    split: "train" or "test" (independent random streams).
    index: sequence index within the split.
    num_frames: N.
    image_size: (width, height).

  Returns:
    The sequence's `SequencePlan`.
  """
  rng = _rng(seed, split, index)
  width, height = image_size
  n = num_frames
  colours = list(PALETTE)
  t_shape, t_colour = str(rng.choice(SHAPES)), str(rng.choice(colours))

  # Absence by index (3, 6 and 9 of every 10) gives ~30% and puts both kinds into small sets.
  either = str(rng.choice(["occlusion", "out_of_view"]))  # drawn always: one stream layout
  kind = {3: "occlusion", 6: "out_of_view", 9: either}.get(index % 10)
  if kind == "out_of_view" and n < _MIN_FRAMES_OUT_OF_VIEW:
    kind = "occlusion"
  if kind == "occlusion" and n < _MIN_FRAMES_OCCLUSION:
    kind = None
  # Out of view may overshoot the requested length by a frame: draw it one shorter.
  span = int(rng.integers(_ABSENT_LEN[0], _ABSENT_LEN[1] + (kind != "out_of_view")))

  sizes = rng.uniform(*_BASE_SIZE) * _scales(rng, n)
  start = _place(rng, sizes[0], image_size)
  if kind == "out_of_view":
    exit_at = int(rng.integers(_FIRST_ABSENT, n - 59))
    motion_seed = int(rng.integers(2**63))
    # How long the target stays out depends on hold only through the discrete steps and scale
    # changes: take the shortest hold whose rendered absence lasts at least `span` frames (it
    # grows by about 2 frames per unit of hold). The motion's own stream makes every try replay
    # the same random accelerations.
    for hold in range(span):
      centers = _simulate(np.random.default_rng(motion_seed), start, sizes, image_size, exit_at,
                          hold)
      absent = sum(_footprint(t_shape, c[0], c[1], z, image_size) is None
                   for c, z in zip(centers, sizes, strict=True))
      if absent >= span:
        break
  else:
    centers = _simulate(rng, start, sizes, image_size)
  target = Track(t_shape, t_colour, centers, sizes)

  num_distractors = int(rng.integers(1, 4))
  shares = ["colour", "shape"][:num_distractors] if num_distractors >= 2 else []
  shares += [str(rng.choice(["colour", "shape"])) for _ in range(num_distractors - len(shares))]
  rng.shuffle(shares)
  h0 = sizes[0] / 2.0
  target_box0 = (start[0] - h0, start[1] - h0, start[0] + h0, start[1] + h0)
  distractors = []
  for share in shares:
    if share == "colour":
      shape, colour = str(rng.choice([s for s in SHAPES if s != t_shape])), t_colour
    else:
      shape, colour = t_shape, str(rng.choice([c for c in colours if c != t_colour]))
    d_sizes = rng.uniform(*_BASE_SIZE) * _scales(rng, n)
    d_start = _place(rng, d_sizes[0], image_size, avoid=target_box0)
    distractors.append(Track(shape, colour, _simulate(rng, d_start, d_sizes, image_size),
                             d_sizes))

  background = _background(rng, width, height)
  occluder = None
  if kind == "occlusion":
    begin = int(rng.integers(_FIRST_ABSENT, n - _ABSENT_LEN[1] - 2))
    c, s = centers[begin:begin + span], sizes[begin:begin + span, None] / 2.0
    # Covers every position the target takes while hidden, with a margin for rasterisation.
    left, top = np.floor(np.min(c - s, axis=0)) - 3
    right, bottom = np.ceil(np.max(c + s, axis=0)) + 4
    box = (max(0, int(left)), max(0, int(top)), min(width, int(right)), min(height, int(bottom)))
    patch = background[box[1]:box[3], box[0]:box[2]].reshape(-1, 3).mean(axis=0)
    # Slightly darker than the background under it: visible as an object, never a palette colour.
    fill = tuple(int(v) for v in np.clip(np.rint(0.8 * patch), 0, 255))
    occluder = Occluder(begin, begin + span, box, fill)

  direction = _direction(centers, image_size)
  sentence = f"the {t_colour} {t_shape}" + (f" moving {direction}" if direction else "")
  return SequencePlan(target, tuple(distractors), background, occluder, sentence)


def render_frame(plan: SequencePlan, t: int) -> tuple[Image.Image, tuple[int, int, int, int] | None,
                                                      bool]:
  """Renders frame t.

  Returns:
    (image, box, occluded): the RGB image; the target's tight box (left, top, right, bottom) in
    integer pixels, right/bottom exclusive, clipped to the image, or None when no target pixel
    shows; whether the occluder hides the target.
  """
  return _render(plan, t, Image.fromarray(plan.background))


def _render(plan: SequencePlan, t: int, background: Image.Image
            ) -> tuple[Image.Image, tuple[int, int, int, int] | None, bool]:
  """`render_frame` with the background already converted, once per sequence."""
  img = background.copy()
  draw = ImageDraw.Draw(img)
  for d in plan.distractors:
    _draw(draw, d.shape, d.centers[t, 0], d.centers[t, 1], d.sizes[t], PALETTE[d.colour])
  target = plan.target
  cx, cy, size = target.centers[t, 0], target.centers[t, 1], target.sizes[t]
  _draw(draw, target.shape, cx, cy, size, PALETTE[target.colour])
  box = _footprint(target.shape, cx, cy, size, img.size)
  occ = plan.occluder
  occluded = occ is not None and occ.start <= t < occ.stop
  if occluded:
    draw.rectangle([occ.box[0], occ.box[1], occ.box[2] - 1, occ.box[3] - 1], fill=occ.colour)
  return img, box, occluded


def write_sequence(seq_dir: str, plan: SequencePlan) -> None:
  """Writes one sequence in the LaSOT layout (img/, groundtruth.txt, nlp.txt, flag files)."""
  img_dir = os.path.join(seq_dir, "img")
  os.makedirs(img_dir)
  n = plan.target.sizes.shape[0]
  rows, occluded, out_of_view = [], [], []
  background = Image.fromarray(plan.background)
  for t in range(n):
    img, box, occ = _render(plan, t, background)
    # Encoding in memory and writing once keeps file-system calls to one open and one write.
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    with open(os.path.join(img_dir, FRAME_PATTERN % (t + 1)), "wb") as f:
      f.write(buf.getbuffer())
    if occ or box is None:
      rows.append("0,0,0,0")  # LaSOT's absent row
    else:
      rows.append(f"{box[0] + 1},{box[1] + 1},{box[2] - box[0]},{box[3] - box[1]}")
    occluded.append("1" if occ else "0")
    out_of_view.append("1" if (box is None and not occ) else "0")
  _write(os.path.join(seq_dir, "groundtruth.txt"), "\n".join(rows) + "\n")
  _write(os.path.join(seq_dir, "full_occlusion.txt"), ",".join(occluded))  # one line, as LaSOT
  _write(os.path.join(seq_dir, "out_of_view.txt"), ",".join(out_of_view))
  _write(os.path.join(seq_dir, "nlp.txt"), plan.sentence + "\n")


def _write(path: str, text: str) -> None:
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write(text)


def generate(out_dir: str, num_train: int, num_test: int, num_frames: int = 100, seed: int = 0,
             image_size: tuple[int, int] = (192, 144), workers: int | None = None) -> None:
  """Writes a synthetic dataset in the LaSOT layout under `out_dir`.

  `out_dir/COMPLETE` is written last. A directory already COMPLETE for the same arguments is left
  as it is; one from an earlier (interrupted or different) run is wiped and regenerated. A
  non-empty directory this generator did not write is never wiped: that is an error.

  Args:
    out_dir: dataset root; gets `training_set.txt`, `testing_set.txt`, `<shape>/<shape>-<n>/`.
    num_train, num_test: sequences per split.
    num_frames: frames per sequence.
    seed: dataset seed; the same arguments give byte-identical files.
    image_size: (width, height) in pixels.
    workers: threads writing sequences in parallel (default 4: file writes wait on I/O); the output
      does not depend on it.
  """
  image_size = (int(image_size[0]), int(image_size[1]))
  if num_train < 0 or num_test < 0 or num_frames < 1 or min(image_size) < 48:
    raise ValueError(f"bad arguments: num_train={num_train} num_test={num_test} "
                     f"num_frames={num_frames} image_size={image_size}")
  args = json.dumps({"format_version": FORMAT_VERSION, "num_train": num_train,
                     "num_test": num_test, "num_frames": num_frames, "seed": seed,
                     "image_size": list(image_size)}, sort_keys=True) + "\n"
  complete = os.path.join(out_dir, "COMPLETE")
  started = os.path.join(out_dir, "SYNTHETIC")
  if os.path.isfile(complete):
    with open(complete, encoding="utf-8") as f:
      if f.read() == args:
        return
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    if not (os.path.isfile(started) or os.path.isfile(complete)):
      raise ValueError(f"{out_dir} is not empty and was not written by this generator; "
                       "refusing to wipe it")
    shutil.rmtree(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  _write(started, args)  # marks the directory as ours, so an interrupted run can be wiped

  # Names are `<target shape>-<n>` with n counting 1.. over train then test: unique across splits,
  # and list line i of a split is that split's sequence index i.
  jobs = [(split, i) for split, count in zip(SPLITS, (num_train, num_test), strict=True)
          for i in range(count)]

  def make(number: int) -> str:
    split, i = jobs[number]
    plan = plan_sequence(seed, split, i, num_frames, image_size)
    name = f"{plan.target.shape}-{number + 1}"
    write_sequence(os.path.join(out_dir, plan.target.shape, name), plan)
    return name

  # Threads, not processes: JPEG encoding, drawing and file writes release the GIL, and a thread
  # pool is safe to start from a process that already runs JAX (fork is not). Each sequence is
  # independent, so the output does not depend on the number of workers.
  workers = workers or 4
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    written = list(pool.map(make, range(len(jobs))))
  names = {"train": written[:num_train], "test": written[num_train:]}
  _write(os.path.join(out_dir, "training_set.txt"), "".join(f"{n}\n" for n in names["train"]))
  _write(os.path.join(out_dir, "testing_set.txt"), "".join(f"{n}\n" for n in names["test"]))
  _write(complete, args)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, help="output dataset root")
  parser.add_argument("--num_train", type=int, default=160)
  parser.add_argument("--num_test", type=int, default=24)
  parser.add_argument("--num_frames", type=int, default=100)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--width", type=int, default=192)
  parser.add_argument("--height", type=int, default=144)
  parser.add_argument("--workers", type=int, default=None, help="threads (default 4)")
  a = parser.parse_args(argv)
  t0 = time.perf_counter()
  generate(a.out, a.num_train, a.num_test, a.num_frames, a.seed, (a.width, a.height),
           a.workers)
  print(f"wrote {a.num_train} + {a.num_test} sequences of {a.num_frames} frames to {a.out} "
        f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
  main()
