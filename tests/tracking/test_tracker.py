"""The online tracker: boxes inside the image, one compilation per frame size, all three modes."""

import jax
import numpy as np
import pytest

from input_pipeline import sources, synthetic
from lgtrack_jax.evaluation.runner import Frames
from lgtrack_jax.models import lgtrack
from lgtrack_jax.tokenizer import Tokenizer
from lgtrack_jax.tracking.tracker import LGTracker, StaticTracker


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, num_train=1, num_test=1, num_frames=12, seed=3)
  return sources.load("synthetic", root, "test")[0]


@pytest.fixture(scope="module")
def tracker():
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  return LGTracker(model, params, config, Tokenizer(config.model.text.tokenizer,
                                                    config.model.text.max_len))


@pytest.mark.parametrize("mode", ["nl_bbox", "bbox", "nl"])
def test_tracks_inside_the_image(tracker, sequence, mode):
  init = None if mode == "nl" else sequence.boxes[0]
  boxes, times = tracker.track(Frames(sequence), init, sequence.sentence, mode)
  h, w = sequence.load_frame(0).shape[:2]
  assert boxes.shape == (len(sequence), 4) and times.shape == (len(sequence),)
  assert np.all(np.isfinite(boxes)) and np.all(times >= 0)
  assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] >= 1)
  assert np.all(boxes[:, 0] + boxes[:, 2] <= w + 1e-3)
  assert np.all(boxes[:, 1] + boxes[:, 3] <= h + 1e-3)
  if mode != "nl":
    np.testing.assert_allclose(boxes[0], sequence.boxes[0], atol=1e-4)
  # One compiled per-frame function for the whole sequence: nothing retraces frame to frame.
  assert tracker._step._cache_size() == 1  # pylint: disable=protected-access


def test_mode_checks(tracker, sequence):
  with pytest.raises(ValueError, match="needs a sentence"):
    tracker.track(Frames(sequence), sequence.boxes[0], None, "nl_bbox")
  with pytest.raises(ValueError, match="needs an initial box"):
    tracker.track(Frames(sequence), None, "the red circle", "bbox")
  with pytest.raises(ValueError, match="mode="):
    tracker.track(Frames(sequence), sequence.boxes[0], "x", "grounding")


def test_static_baseline_repeats_the_first_box(sequence):
  boxes, _ = StaticTracker().track(Frames(sequence), sequence.boxes[0], None, "bbox")
  np.testing.assert_array_equal(boxes, np.repeat(sequence.boxes[:1], len(sequence), axis=0))
