"""A user's own video in and out: frames streamed from a file, a folder or a glob; boxes drawn.

  frames, fps = video.read_frames("clip.mp4")       # or "frames/", or "frames/*.jpg"
  with video.VideoWriter("out.mp4", fps or 30) as writer:
    for i, frame in enumerate(frames):
      writer.write(video.draw(frame, box, "the red car", score, index=i))

Frames are [H, W, 3] uint8 RGB numpy arrays, decoded one at a time (a video of any length holds
one frame in memory). Video files go through PyAV (FFmpeg): mp4, avi, webm, mkv, mov and whatever
else FFmpeg reads. Folders and globs take the image files (jpg, jpeg, png, bmp) in natural order
(frame2 before frame10). Bad input is a FileNotFoundError or ValueError with a one-line message
naming the path.
"""

from __future__ import annotations

import fractions
import glob
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
BOX_COLOUR = (0, 255, 64)
_GLOB_CHARS = re.compile(r"[*?\[]")


class Frames(Iterator[np.ndarray]):
  """An iterator over a source's frames, [H, W, 3] uint8 RGB each, decoded on demand.

  Attributes:
    path: the source as given.
    total: the number of frames if the source knows it (a folder always; a video file when its
      container says), else None. Only a hint for progress bars: decoding is what counts.
  """

  def __init__(self, path: str, total: int | None, frames: Iterator[np.ndarray],
               close: Any = None):
    self.path = path
    self.total = total
    self._frames = frames
    self._close = close

  def __next__(self) -> np.ndarray:
    return next(self._frames)

  def close(self) -> None:
    """Releases the decoder now rather than when the iterator is collected."""
    if self._close is not None:
      self._close()
      self._close = None


def read_frames(path: str) -> tuple[Frames, float | None]:
  """Opens a video file, a folder of images or a glob pattern of images.

  The source is opened (and a video file's header read) here, so a missing or undecodable one
  fails at once; the frames themselves are decoded as the iterator is advanced.

  Args:
    path: a video file, a directory of image files, or a glob such as 'seq/img/*.jpg'.
  Returns:
    (frames: an iterator of [H, W, 3] uint8 RGB arrays, the frame rate in frames per second or
    None where the source has none: images, or a video whose container does not say).
  Raises:
    FileNotFoundError: no such file or folder, or a glob that matches no file.
    ValueError: a file FFmpeg cannot decode or without a video stream; a folder or glob with no
      image files (and, while iterating, an image file that is not a readable image).
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    files = _image_files(os.path.join(path, name) for name in os.listdir(path))
    if not files:
      raise ValueError(f"{path}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return Frames(path, len(files), _read_images(files)), None
  if os.path.exists(path):
    return _open_video(path)
  if _GLOB_CHARS.search(path):
    matches = glob.glob(path)
    if not matches:
      raise FileNotFoundError(f"{path}: pattern matches no file")
    files = _image_files(matches)
    if not files:
      raise ValueError(f"{path}: pattern matches no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return Frames(path, len(files), _read_images(files)), None
  raise FileNotFoundError(f"{path}: no such file or folder")


def _natural_key(path: str) -> list[Any]:
  # Digit runs compare as numbers: unpadded frame numbers (img2, img10) keep their order.
  return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def _image_files(paths: Any) -> list[str]:
  files = [p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p)]
  return sorted(files, key=_natural_key)


def _read_images(files: Sequence[str]) -> Iterator[np.ndarray]:
  for file in files:
    try:
      with Image.open(file) as image:
        yield np.asarray(image.convert("RGB"))
    except OSError as e:  # PIL's UnidentifiedImageError, truncated files
      raise ValueError(f"{file}: not a readable image ({e})") from None


def _open_video(path: str) -> tuple[Frames, float | None]:
  try:
    container = av.open(path)
  except av.FFmpegError as e:
    raise ValueError(f"{path}: not a video FFmpeg can decode ({_ffmpeg_reason(e)})") from None
  if not container.streams.video:
    container.close()
    raise ValueError(f"{path}: has no video stream")
  stream = container.streams.video[0]
  stream.thread_type = "AUTO"  # frame threads: decoding keeps pace with the tracker
  rate = stream.average_rate or stream.guessed_rate
  fps = float(rate) if rate else None
  return Frames(path, stream.frames or None, _decode(container, stream, path),
                container.close), fps


def _decode(container: Any, stream: Any, path: str) -> Iterator[np.ndarray]:
  index = 0
  try:
    for frame in container.decode(stream):
      yield frame.to_ndarray(format="rgb24")
      index += 1
  except av.FFmpegError as e:
    raise ValueError(f"{path}: decoding failed at frame {index} ({_ffmpeg_reason(e)})") from None
  finally:
    container.close()


def _ffmpeg_reason(e: Exception) -> str:
  return getattr(e, "strerror", None) or str(e)


class VideoWriter:
  """An H.264 (libx264, yuv420p) video file written frame by frame; a context manager.

  The size is the first frame's; libx264's 4:2:0 chroma needs even sides, so a frame with an odd
  width or height gets one black column or row on the right or bottom.

  Args:
    path: the output file ('.mp4', '.mkv', ...; the container follows the suffix).
    fps: frames per second (a float or a Fraction: 30000/1001 stays exact).
    crf: libx264's constant quality (0 lossless, 23 its default; lower is better and larger).
    preset: libx264's speed preset; 'veryfast' keeps the encoder well behind the tracker in cost.
  """

  def __init__(self, path: str, fps: float | fractions.Fraction = 30, crf: int = 23,
               preset: str = "veryfast"):
    if not fps or fps <= 0:
      raise ValueError(f"fps={fps!r}: expected a positive frame rate")
    self.path = os.fspath(path)
    self.rate = fractions.Fraction(fps).limit_denominator(1001)
    self.options = {"crf": str(crf), "preset": preset}
    self.frames = 0
    self.size: tuple[int, int] | None = None  # the first frame's (height, width)
    self._container = None
    self._stream = None

  def __enter__(self) -> VideoWriter:
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close(flush=exc_type is None)

  def write(self, frame: np.ndarray) -> None:
    """Appends a [H, W, 3] uint8 RGB frame; every frame must have the first one's size."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
      raise ValueError(f"{self.path}: frames must be (H, W, 3) uint8 RGB, got {frame.dtype} "
                       f"{frame.shape}")
    if self._container is None:
      self._open(frame.shape[:2])
    if frame.shape[:2] != self.size:
      raise ValueError(f"{self.path}: frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, "
                       f"the video {self.size[1]}x{self.size[0]}: all frames need one size")
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
      frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
    out = av.VideoFrame.from_ndarray(frame, format="rgb24")
    out.pts = self.frames
    for packet in self._stream.encode(out):
      self._container.mux(packet)
    self.frames += 1

  def _open(self, size: tuple[int, int]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    self.size = (int(size[0]), int(size[1]))
    self._container = av.open(self.path, mode="w")
    stream = self._container.add_stream("libx264", rate=self.rate)
    stream.height, stream.width = self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = 1 / self.rate  # pts count frames
    stream.options = self.options
    self._stream = stream

  def close(self, flush: bool = True) -> None:
    """Drains the encoder (unless `flush` is False) and closes the file. No frames: no file."""
    if self._container is None:
      return
    try:
      if flush:
        for packet in self._stream.encode(None):
          self._container.mux(packet)
    finally:
      self._container.close()
      self._container = None


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  try:  # Pillow's bundled scalable font (needs FreeType)
    return ImageFont.load_default(size=size)
  except (TypeError, ImportError, OSError):
    return ImageFont.load_default()


def draw(frame: np.ndarray, box: Sequence[float] | np.ndarray, text: str | None = None,
         score: float | None = None, index: int | None = None) -> np.ndarray:
  """The frame with the box and a caption drawn on it.

  Args:
    frame: [H, W, 3] uint8 RGB; not modified.
    box: [4] x, y, w, h in 0-based pixels.
    text: the sentence, written on the caption's second line (None or '': none).
    score: the frame's confidence, or None (the first frame, whose box is given or grounded).
    index: the frame's index, written first on the caption.
  Returns:
    A new [H, W, 3] uint8 RGB array.
  """
  image = Image.fromarray(np.asarray(frame, np.uint8), "RGB")
  canvas = ImageDraw.Draw(image)
  height, width = frame.shape[:2]
  x, y, w, h = (float(v) for v in np.asarray(box, np.float64).reshape(4))
  thick = max(1, round(min(height, width) / 160))
  # A dark outline under the coloured one keeps the box visible on bright backgrounds.
  canvas.rectangle([x - 1, y - 1, x + w, y + h], outline=(0, 0, 0), width=thick + 2)
  canvas.rectangle([x, y, x + w - 1, y + h - 1], outline=BOX_COLOUR, width=thick)
  head = [] if index is None else [f"#{index}"]
  head.append("init" if score is None else f"score {score:.2f}")
  lines = ["  ".join(head)] + ([text] if text else [])
  font = _font(max(10, height // 28))
  caption = "\n".join(lines)
  left, top, right, bottom = canvas.multiline_textbbox((4, 3), caption, font=font)
  # Dim only the caption's strip: the frame stays readable under it.
  strip = np.asarray(image).copy()
  strip[max(0, top - 2):bottom + 3, max(0, left - 3):right + 4] //= 2
  image = Image.fromarray(strip, "RGB")
  ImageDraw.Draw(image).multiline_text((4, 3), caption, fill=(255, 255, 255), font=font)
  return np.asarray(image)
