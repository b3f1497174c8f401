"""The per-frame API (`lgtrack_jax.load_tracker`): eval.py's boxes, one compilation per frame-size
bucket, and a one-line ValueError for each kind of bad input."""

import os

import numpy as np
import pytest

import lgtrack_jax
from input_pipeline import sources
from lgtrack_jax.evaluation import results, runner
from lgtrack_jax import config_io
from lgtrack_jax.tracking import online
from tests.conftest import micro_config, synthetic_root, write_micro_config_file


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return synthetic_root(tmp_path_factory, num_train=1, num_test=2, num_frames=8, seed=3)


@pytest.fixture(scope="module")
def trackers(workdir):
  """One API tracker per mode, sharing nothing (each compiles its own functions)."""
  return {mode: lgtrack_jax.load_tracker(micro_config(), checkpoint=workdir, mode=mode)
          for mode in ("bbox", "nl", "nl_bbox")}


def _api_boxes(tracker, seq) -> np.ndarray:
  frames = [seq.load_frame(i) for i in range(len(seq))]
  box = None if tracker.mode == "nl" else seq.boxes[0]
  out = [tracker.initialize(frames[0], box=box, sentence=seq.sentence)]
  out += [tracker.track(f) for f in frames[1:]]
  assert all(b.dtype == np.float32 and b.shape == (4,) for b in out)
  assert 0.0 <= tracker.confidence <= 1.0
  return seq.to_file_coords(np.stack(out).astype(np.float64))


@pytest.mark.parametrize("mode", ["bbox", "nl", "nl_bbox"])
def test_api_gives_eval_py_boxes(trackers, data_root, workdir, tmp_path, mode):
  out = str(tmp_path / mode)
  runner.run(config=micro_config(), checkpoint=workdir, dataset="synthetic", data_root=data_root,
             split="test", results_dir=out, mode=mode, tracker="lgtrack", analyze_only=False,
             sequences_file=None, protocol="official", validity="all4")
  seqs = sources.load("synthetic", data_root, "test")
  assert len(seqs) >= 2
  for seq in seqs:
    expected = results.read_result(os.path.join(out, f"{seq.name}.txt"))
    # The result file keeps 4 decimals; the API's float32 boxes round to the same values.
    np.testing.assert_allclose(_api_boxes(trackers[mode], seq), expected, atol=2e-4, rtol=0)


def test_one_compilation_per_frame_size_bucket(workdir):
  tracker = lgtrack_jax.load_tracker(micro_config(), checkpoint=workdir, mode="bbox")
  bucket = tracker.config.eval.frame_bucket
  rng = np.random.default_rng(0)

  def video(h, w, n=3):
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]

  # Two videos whose sizes differ but round up to the same bucket, then a larger one.
  for frames in (video(bucket - 7, bucket - 3), video(bucket - 30, bucket - 1),
                 video(bucket + 5, bucket)):
    tracker.initialize(frames[0], box=(4, 5, 20, 16))
    for f in frames[1:]:
      tracker.track(f)
  assert tracker.tracker.traces["step"] == 2
  assert tracker.tracker.traces["init"] == 2


def test_frames_of_other_layouts_are_converted(trackers):
  tracker = trackers["bbox"]
  rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
  gray = rgb[..., 0]
  tracker.initialize(np.repeat(gray[..., None], 3, axis=2), box=(10, 10, 12, 12))
  expected = tracker.track(np.repeat(gray[..., None], 3, axis=2))
  for frame in (gray, gray[..., None]):
    tracker.initialize(frame, box=(10, 10, 12, 12))
    np.testing.assert_array_equal(tracker.track(frame), expected)
  rgba = np.concatenate([rgb, np.full((40, 50, 1), 7, np.uint8)], axis=2)
  tracker.initialize(rgb, box=(10, 10, 12, 12))
  expected = tracker.track(rgb)
  tracker.initialize(rgba, box=(10, 10, 12, 12))
  np.testing.assert_array_equal(tracker.track(rgba), expected)


FRAME = np.zeros((40, 50, 3), np.uint8)


@pytest.mark.parametrize("mode, call, message", [
    ("bbox", lambda t: t.initialize(FRAME), "needs a first box"),
    ("nl_bbox", lambda t: t.initialize(FRAME, sentence="a cat"), "needs a first box"),
    ("bbox", lambda t: t.initialize(FRAME, box=(1, 2, 0, 5)), "width and height must be > 0"),
    ("bbox", lambda t: t.initialize(FRAME, box=(1, 2, 5, -1)), "width and height must be > 0"),
    ("bbox", lambda t: t.initialize(FRAME, box=(60, 2, 5, 5)), "outside the 50x40 frame"),
    ("bbox", lambda t: t.initialize(FRAME, box=(-9, 2, 5, 5)), "outside the 50x40 frame"),
    ("bbox", lambda t: t.initialize(FRAME, box=(1, 2, 3)), "four finite numbers"),
    ("bbox", lambda t: t.initialize(FRAME, box=(1, 2, np.nan, 3)), "four finite numbers"),
    ("nl_bbox", lambda t: t.initialize(FRAME, box=(1, 2, 5, 5)), "non-empty sentence"),
    ("nl_bbox", lambda t: t.initialize(FRAME, box=(1, 2, 5, 5), sentence=" \t"),
     "non-empty sentence"),
    ("nl", lambda t: t.initialize(FRAME, sentence=""), "non-empty sentence"),
    ("bbox", lambda t: t.initialize(FRAME.astype(np.float32), box=(1, 2, 5, 5)), "dtype float32"),
    ("bbox", lambda t: t.initialize(FRAME[0, :, 0], box=(1, 2, 5, 5)), "shape (50,)"),
    ("bbox", lambda t: t.initialize(FRAME[None], box=(1, 2, 5, 5)), "shape (1, 40, 50, 3)"),
    ("bbox", lambda t: t.initialize([[0]], box=(1, 2, 5, 5)), "numpy array"),
    ("bbox", lambda t: t.track(FRAME), "before initialize"),
])
def test_bad_input_is_a_one_line_value_error(workdir, trackers, mode, call, message):
  tracker = online.Tracker(trackers[mode].tracker, mode)  # fresh: never initialised
  with pytest.raises(ValueError) as e:
    call(tracker)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_loading_errors(workdir, tmp_path):
  with pytest.raises(ValueError, match="one of checkpoint"):
    lgtrack_jax.load_tracker(micro_config())
  with pytest.raises(FileNotFoundError, match="does not exist"):
    lgtrack_jax.load_tracker(micro_config(), checkpoint=str(tmp_path / "nope"))
  with pytest.raises(ValueError, match="mode="):
    lgtrack_jax.load_tracker(micro_config(), checkpoint=workdir, mode="box")


def test_a_config_file_with_overrides(workdir, tmp_path):
  path = write_micro_config_file(tmp_path)
  config = config_io.load(path, {"eval.frame_bucket": 64})
  assert config.eval.frame_bucket == 64
  config = config_io.load(path, ["eval.frame_bucket=32", "eval.search_window=true"])
  assert config.eval.frame_bucket == 32 and config.eval.search_window is True
  with pytest.raises(ValueError, match="no such field"):
    config_io.load(path, ["eval.no_such_field=1"])
  tracker = lgtrack_jax.load_tracker(path, checkpoint=workdir, mode="bbox",
                                     overrides={"eval.frame_bucket": 64})
  assert tracker.config.eval.frame_bucket == 64
