"""Writers of tiny datasets in each dataset's exact on-disk layout, for the reader tests.

Frames are either a real tiny JPEG/PNG (when a test decodes them) or empty files (readers never
decode; only the listing matters). Everything is written under a pytest tmp dir.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 32, 24  # frame size of the decodable frames


def image_bytes(fmt: str = "JPEG", colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
  """A W x H image with a bright square, encoded as JPEG or PNG."""
  img = np.zeros((H, W, 3), np.uint8)
  img[:] = colour
  img[6:18, 8:20] = (250, 250, 250)
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format=fmt)
  return buf.getvalue()


_JPEG = image_bytes("JPEG")
_PNG = image_bytes("PNG")


def write_frames(folder: Path, names: list[str], real: bool = True) -> None:
  """Writes frame files; decodable images when `real`, else empty files."""
  folder.mkdir(parents=True, exist_ok=True)
  for n in names:
    data = (_PNG if n.lower().endswith(".png") else _JPEG) if real else b""
    (folder / n).write_bytes(data)


def rows_text(rows: np.ndarray | list, sep: str = ",", line_end: str = "\n") -> str:
  """[N, 4] boxes -> the text of a ground-truth file (integers written without '.0')."""
  out = []
  for r in np.asarray(rows, np.float64):
    out.append(sep.join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in r))
  return line_end.join(out) + line_end


def boxes(n: int, x0: float = 2, y0: float = 3) -> np.ndarray:
  """[n, 4] plausible x, y, w, h boxes inside a W x H frame."""
  k = np.arange(n, dtype=np.float64)
  return np.stack([x0 + k % 5, y0 + k % 3, 10 + k % 4, 8 + k % 2], axis=1)


def write_lasot(root: Path, name: str, n: int = 6, *, sentence: str | None = "the object",
                real: bool = True, gt: np.ndarray | None = None) -> Path:
  """One LaSOT sequence `<root>/<class>/<name>/` with n frames."""
  seq = root / name.rsplit("-", 1)[0] / name
  seq.mkdir(parents=True)
  (seq / "groundtruth.txt").write_text(rows_text(boxes(n) if gt is None else gt))
  (seq / "full_occlusion.txt").write_text(",".join(["0"] * n))
  (seq / "out_of_view.txt").write_text(",".join(["0"] * n))
  if sentence is not None:
    (seq / "nlp.txt").write_text(sentence)
  write_frames(seq / "img", [f"{k:08d}.jpg" for k in range(1, n + 1)], real)
  return seq


def write_tnl2k(split_dir: Path, name: str, rows: np.ndarray | None = None, *, n: int = 6,
                sentence: str | None = "a person in a red coat", ext: str = ".jpg",
                names: list[str] | None = None, real: bool = True) -> Path:
  """One TNL2K sequence `<split_dir>/<name>/` (imgs/, groundtruth.txt, language.txt)."""
  rows = boxes(n) if rows is None else np.asarray(rows)
  seq = split_dir / name
  seq.mkdir(parents=True)
  (seq / "groundtruth.txt").write_text(rows_text(rows))
  if sentence is not None:
    (seq / "language.txt").write_text(sentence + "\n")
  names = [f"{k:05d}{ext}" for k in range(1, len(rows) + 1)] if names is None else names
  write_frames(seq / "imgs", names, real)
  return seq


def write_otb_video(root: Path, video: str, num_images: int, anno: dict[str, str], *,
                    digits: int = 4) -> Path:
  """`<root>/OTB_videos/<video>/` with images 1..num_images (empty) and annotation files."""
  folder = root / "OTB_videos" / video
  write_frames(folder / "img", [f"{k:0{digits}d}.jpg" for k in range(1, num_images + 1)],
               real=False)
  for file, text in anno.items():
    (folder / file).write_text(text)
  return folder


def write_otb_query(root: Path, split: str, name: str, sentence: str) -> None:
  d = root / f"OTB_query_{split}"
  d.mkdir(parents=True, exist_ok=True)
  (d / f"{name}.txt").write_text(sentence)


def write_got10k(split_dir: Path, name: str, n: int = 6, *, rows: np.ndarray | None = None,
                 absence: list[int] | None = None, cover: list[int] | None = None,
                 meta: str | None = None, real: bool = False, test: bool = False) -> Path:
  """One GOT-10k sequence `<split_dir>/<name>/`; `test` writes the first row only."""
  seq = split_dir / name
  seq.mkdir(parents=True)
  rows = boxes(n) if rows is None else np.asarray(rows)
  (seq / "groundtruth.txt").write_text(rows_text(rows[:1] if test else rows))
  if not test:
    absence = [0] * n if absence is None else absence
    cover = [8] * n if cover is None else cover
    (seq / "absence.label").write_text("".join(f"{v}\n" for v in absence))
    (seq / "cover.label").write_text("".join(f"{v}\n" for v in cover))
  meta = ("[METAINFO]\nurl: https://youtu.be/x\nobject_class: ichneumon\nmotion_class: walking\n"
          "major_class: mammal\nresolution: (32, 24)\n") if meta is None else meta
  if meta:
    (seq / "meta_info.ini").write_text(meta)
  write_frames(seq, [f"{k:08d}.jpg" for k in range(1, n + 1)], real)
  return seq


def write_got10k_list(split_dir: Path, names: list[str]) -> None:
  split_dir.mkdir(parents=True, exist_ok=True)
  (split_dir / "list.txt").write_text("".join(f"{n}\n" for n in names))


def write_trackingnet(root: Path, chunk: str, name: str, n: int = 12, *,
                      rows: np.ndarray | None = None, frames: bool = True, real: bool = False,
                      first_row_only: bool = False) -> Path:
  """`<root>/<chunk>/anno/<name>.txt` (CRLF) and `<root>/<chunk>/frames/<name>/0.jpg ...`."""
  rows = boxes(n) if rows is None else np.asarray(rows)
  anno = root / chunk / "anno"
  anno.mkdir(parents=True, exist_ok=True)
  (anno / f"{name}.txt").write_bytes(
      rows_text(rows[:1] if first_row_only else rows, line_end="\r\n").encode())
  folder = root / chunk / "frames" / name
  if frames:
    write_frames(folder, [f"{k}.jpg" for k in range(n)], real)
  return folder


def age(root: Path, seconds: float = 60.0) -> None:
  """Moves every mtime under root `seconds` into the past, so the index cache trusts them."""
  t = os.stat(root).st_mtime - seconds
  for d, dirs, files in os.walk(root):
    for n in files + dirs:
      os.utime(os.path.join(d, n), (t, t))
  os.utime(root, (t, t))
