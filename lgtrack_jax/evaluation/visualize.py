"""Look at a tracking run: per sequence an animated GIF and a PNG contact sheet of frames with the
predicted box (red), the ground truth (green; absent frames say so) and the sentence drawn on.

Pillow only (no matplotlib, no TensorFlow): works on any evaluation box.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
from PIL import Image, ImageDraw

from input_pipeline.sources.base import Sequence

PRED_COLOR = (255, 40, 40)
GT_COLOR = (40, 220, 40)


def _draw(frame: np.ndarray, pred: np.ndarray, gt: np.ndarray | None, caption: str,
          width: int) -> Image.Image:
  """frame [H, W, 3] uint8, boxes [4] xywh model-space px -> annotated image `width` wide."""
  im = Image.fromarray(frame)
  scale = width / im.width
  im = im.resize((width, max(1, round(im.height * scale))), Image.BILINEAR)
  d = ImageDraw.Draw(im)
  for box, color in ((gt, GT_COLOR), (pred, PRED_COLOR)):
    if box is None or not np.all(np.isfinite(box)):
      continue
    x, y, w, h = (float(v) * scale for v in box)
    d.rectangle([x, y, x + w, y + h], outline=color, width=2)
  lines = textwrap.wrap(caption, width=max(20, width // 7))[:3]
  if lines:
    d.rectangle([0, 0, width, 12 * len(lines) + 4], fill=(0, 0, 0))
    for i, line in enumerate(lines):
      d.text((3, 2 + 12 * i), line, fill=(255, 255, 255))
  return im


def render_sequence(seq: Sequence, pred_file_coords: np.ndarray, out_dir: str,
                    sentence: str | None, *, max_frames: int = 60, sheet_frames: int = 12,
                    width: int = 320) -> dict[str, str]:
  """Writes `<out_dir>/<seq>.gif` and `<out_dir>/<seq>_sheet.png`.

  Args:
    seq: the sequence (frames, ground truth).
    pred_file_coords: [N, 4] predictions as read from the result file (dataset coordinates).
    sentence: the sentence the tracker was given (drawn on top), or None.
    max_frames: frames in the GIF, evenly spaced over the sequence.
    sheet_frames: frames on the contact sheet (4 per row).
  Returns:
    {'gif': path, 'sheet': path}.
  """
  n = len(seq)
  if len(pred_file_coords) < n:
    raise ValueError(f"{seq.name}: {len(pred_file_coords)} predictions for {n} frames")
  pred = np.asarray(pred_file_coords[:n], np.float64) - seq.to_file_coords(np.zeros(4))
  gt = seq.boxes
  os.makedirs(out_dir, exist_ok=True)

  def frame(i: int) -> Image.Image:
    caption = f"#{i}" + (" (target absent)" if seq.absent[i] else "")
    if sentence:
      caption += f"  {sentence}"
    return _draw(seq.load_frame(i), pred[i], None if seq.absent[i] else gt[i], caption, width)

  gif_ids = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
  gif = [frame(int(i)) for i in gif_ids]
  gif_path = os.path.join(out_dir, f"{seq.name}.gif")
  gif[0].save(gif_path, save_all=True, append_images=gif[1:], duration=100, loop=0)

  sheet_ids = np.unique(np.linspace(0, n - 1, min(n, sheet_frames)).round().astype(int))
  tiles = [frame(int(i)) for i in sheet_ids]
  cols = min(4, len(tiles))
  rows = -(-len(tiles) // cols)
  tw, th = tiles[0].width, max(t.height for t in tiles)
  sheet = Image.new("RGB", (cols * tw, rows * th), (255, 255, 255))
  for j, tile in enumerate(tiles):
    sheet.paste(tile, ((j % cols) * tw, (j // cols) * th))
  sheet_path = os.path.join(out_dir, f"{seq.name}_sheet.png")
  sheet.save(sheet_path)
  return {"gif": gif_path, "sheet": sheet_path}
