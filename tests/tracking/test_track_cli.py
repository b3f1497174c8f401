"""track.py on a user's own video: an encoded mp4, a folder of PNGs and a glob give the API's boxes;
the boxed video, the boxes file and the summary are complete; bad input is one line, status 2."""

from __future__ import annotations

import fractions
import json
import os
import subprocess
import sys
import types

import av
import numpy as np
import pytest
from PIL import Image

import lgtrack_jax
from lgtrack_jax.tracking import online, video
from tests.conftest import REPO, micro_config, write_micro_config_file

NUM_FRAMES, WIDTH, HEIGHT = 12, 96, 80
FIRST_BOX = (20.0, 24.0, 16.0, 16.0)  # x, y, w, h of the square in frame 0
SENTENCE = "the red square"


def _square_frames() -> list[np.ndarray]:
  """A red square moving right and down over a smooth grey-blue gradient: [H, W, 3] uint8."""
  yy, xx = np.mgrid[:HEIGHT, :WIDTH]
  background = np.stack([60 + xx // 3, 80 + yy // 3, 120 + 0 * xx], -1).astype(np.uint8)
  frames = []
  for i in range(NUM_FRAMES):
    frame = background.copy()
    x, y, w, h = (int(v) for v in FIRST_BOX)
    frame[y + i:y + i + h, x + 2 * i:x + 2 * i + w] = (225, 30, 30)
    frames.append(frame)
  return frames


def _write_mp4(path: str, frames: list[np.ndarray], fps: int = 25) -> None:
  with av.open(path, mode="w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)


def _decode_all(path: str) -> list[np.ndarray]:
  with av.open(path) as container:
    return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> types.SimpleNamespace:
  """The mp4, its frames as decoded by `video.read_frames`, and the same pixels as PNGs."""
  root = tmp_path_factory.mktemp("clip")
  mp4 = str(root / "square.mp4")
  _write_mp4(mp4, _square_frames())
  frames, fps = video.read_frames(mp4)
  decoded = list(frames)
  png_dir = root / "png"
  png_dir.mkdir()
  for i, frame in enumerate(decoded):  # unpadded numbers: the natural order must be kept
    Image.fromarray(frame).save(png_dir / f"frame{i}.png")
  (png_dir / "notes.txt").write_text("not a frame\n")  # ignored: not an image
  return types.SimpleNamespace(root=root, mp4=mp4, fps=fps, frames=decoded, png_dir=str(png_dir))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> str:
  return write_micro_config_file(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def api_boxes(workdir, clip) -> dict[str, np.ndarray]:
  """The per-frame API's boxes [N, 4] on the decoded frames, modes nl_bbox and nl (one model)."""
  tracker = lgtrack_jax.load_tracker(micro_config(), checkpoint=workdir, mode="nl_bbox")
  out = {}
  for mode in ("nl_bbox", "nl"):
    t = online.Tracker(tracker.tracker, mode)
    boxes = [t.initialize(clip.frames[0], box=None if mode == "nl" else FIRST_BOX,
                          sentence=SENTENCE)]
    boxes += [t.track(f) for f in clip.frames[1:]]
    out[mode] = np.stack(boxes).astype(np.float64)
  return out


def _track(config_file: str, workdir: str, video_arg: str, out_dir, *extra: str
           ) -> subprocess.CompletedProcess:
  out_dir = str(out_dir)
  return subprocess.run(
      [sys.executable, "track.py", f"--config={config_file}", f"--checkpoint={workdir}",
       f"--video={video_arg}", f"--out={out_dir}/out.mp4", f"--boxes={out_dir}/boxes.txt",
       *extra], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def _read_boxes(path: str) -> np.ndarray:
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert all(len(line.split(",")) == 4 for line in lines), lines
  return np.array([[float(v) for v in line.split(",")] for line in lines])


def _assert_same_to_4_decimals(got: np.ndarray, want: np.ndarray) -> None:
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=0, atol=5.001e-5)


def test_mp4_nl_bbox_video_boxes_and_summary(clip, workdir, config_file, api_boxes, tmp_path):
  box = ",".join(str(v) for v in FIRST_BOX)
  proc = _track(config_file, workdir, clip.mp4, tmp_path, f"--text={SENTENCE}", f"--box={box}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "12 frames (nl_bbox)" in proc.stdout
  # The boxed video: every frame, the input's size (even already: no padding) and frame rate.
  with av.open(str(tmp_path / "out.mp4")) as container:
    stream = container.streams.video[0]
    assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
    assert float(stream.average_rate) == pytest.approx(clip.fps)
    out_frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
  assert len(out_frames) == NUM_FRAMES
  assert all(f.shape == (HEIGHT + HEIGHT % 2, WIDTH + WIDTH % 2, 3) for f in out_frames)
  # The boxes file: one line per frame, the API's boxes on the same frames.
  boxes = _read_boxes(str(tmp_path / "boxes.txt"))
  _assert_same_to_4_decimals(boxes, api_boxes["nl_bbox"])
  np.testing.assert_array_equal(boxes[0], FIRST_BOX)
  with open(tmp_path / "out.json", encoding="utf-8") as f:
    summary = json.load(f)
  assert summary["frames"] == NUM_FRAMES and summary["mode"] == "nl_bbox"
  assert summary["first_box"] == list(FIRST_BOX) and summary["first_box_source"] == "given"
  assert summary["scores"][0] is None and len(summary["scores"]) == NUM_FRAMES
  assert all(0 <= s <= 1 for s in summary["scores"][1:])
  assert len(summary["seconds"]) == NUM_FRAMES and summary["fps"] > 0
  assert summary["args"]["text"] == SENTENCE and summary["args"]["config"] == config_file


@pytest.mark.slow  # ~13 s: two more track.py runs (the mp4 run covers the path)
def test_png_folder_and_glob_give_the_same_boxes(clip, workdir, config_file, api_boxes,
                                                 tmp_path):
  x, y, w, h = FIRST_BOX
  box = f"{x + 1} {y + 1} {w} {h}"  # 1-based and space-separated, as some toolkits' files are
  proc = _track(config_file, workdir, clip.png_dir, tmp_path / "folder", f"--text={SENTENCE}",
                f"--box={box}", "--box_base=1", f"--summary={tmp_path}/folder.json")
  assert proc.returncode == 0, proc.stderr[-3000:]
  _assert_same_to_4_decimals(_read_boxes(str(tmp_path / "folder/boxes.txt")),
                             api_boxes["nl_bbox"])
  with open(tmp_path / "folder.json", encoding="utf-8") as f:
    assert json.load(f)["input_fps"] is None
  # A glob with a sentence and no box: mode nl, the grounded first box is the first line.
  proc = _track(config_file, workdir, os.path.join(clip.png_dir, "frame*.png"),
                tmp_path / "glob", f"--text={SENTENCE}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "(nl)" in proc.stdout
  boxes = _read_boxes(str(tmp_path / "glob/boxes.txt"))
  _assert_same_to_4_decimals(boxes, api_boxes["nl"])
  with open(tmp_path / "glob/out.json", encoding="utf-8") as f:
    summary = json.load(f)
  assert summary["first_box_source"] == "grounded"
  np.testing.assert_allclose(summary["first_box"], boxes[0], atol=5.001e-5)


@pytest.mark.parametrize("case", ["missing", "not_a_video", "empty_folder", "empty_glob",
                                  "no_box", "bad_box", "box_outside"])
def test_bad_input_is_one_line_and_status_2(case, clip, workdir, tmp_path):
  text_file = tmp_path / "notes.mp4"
  text_file.write_text("these are not the frames you are looking for\n" * 20)
  (tmp_path / "empty").mkdir()
  video_arg, extra, named = {
      "missing": (str(tmp_path / "nope.mp4"), ["--box=1,2,3,4"], "nope.mp4"),
      "not_a_video": (str(text_file), ["--box=1,2,3,4"], "notes.mp4"),
      "empty_folder": (str(tmp_path / "empty"), ["--box=1,2,3,4"], "empty"),
      "empty_glob": (str(tmp_path / "empty/*.jpg"), ["--box=1,2,3,4"], "empty/*.jpg"),
      "no_box": (clip.mp4, ["--mode=bbox"], "--box"),
      "bad_box": (clip.mp4, ["--box=1,2,three,4"], "1,2,three,4"),
      "box_outside": (clip.mp4, ["--box=500,2,3,4"], "outside the 96x80 frame"),
  }[case]
  # configs/tiny.py loads without JAX: a bad input costs a fraction of a second.
  proc = _track("configs/tiny.py", workdir, video_arg, tmp_path, *extra)
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("track.py: error: "), proc.stderr
  assert named in lines[0]
  assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "boxes.txt").exists()


def test_read_frames_streams(clip):
  frames, fps = video.read_frames(clip.mp4)
  assert not isinstance(frames, (list, tuple)) and iter(frames) is frames
  assert fps == pytest.approx(25) and frames.total == NUM_FRAMES
  first = next(frames)
  assert first.shape == (HEIGHT, WIDTH, 3) and first.dtype == np.uint8
  frames.close()
  pngs, fps = video.read_frames(clip.png_dir)
  assert fps is None and not isinstance(pngs, (list, tuple)) and iter(pngs) is pngs
  for got, want in zip(pngs, clip.frames, strict=True):  # frame10 after frame9: natural order
    np.testing.assert_array_equal(got, want)


def test_odd_frames_are_padded_to_even(tmp_path):
  path = str(tmp_path / "odd.mp4")
  frame = np.full((21, 33, 3), 200, np.uint8)
  with video.VideoWriter(path, 30000 / 1001) as writer:
    for i in range(3):
      writer.write(video.draw(frame, (3, 4, 10, 8), SENTENCE, 0.5, index=i))
  decoded = _decode_all(path)
  assert len(decoded) == 3 and decoded[0].shape == (22, 34, 3)
  with av.open(path) as container:
    assert container.streams.video[0].average_rate == fractions.Fraction(30000, 1001)
  with pytest.raises(ValueError, match="one size"):
    with video.VideoWriter(str(tmp_path / "mixed.mp4")) as writer:
      writer.write(frame)
      writer.write(frame[:20])


def test_draw_leaves_the_frame_and_marks_the_box():
  frame = np.zeros((80, 96, 3), np.uint8)
  out = video.draw(frame, (40, 40, 20, 20), SENTENCE, 0.87, index=3)
  assert out.shape == frame.shape and out.dtype == np.uint8 and not frame.any()
  assert tuple(out[50, 40]) == video.BOX_COLOUR and not out[50, 50].any()  # edge, inside
  assert out[:12, :40].any()  # the caption

