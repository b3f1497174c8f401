"""The official OSTrack tracker and ours, on the same frames, from the same checkpoint.

Opt-in: runs when OSTRACK_ROOT names a checkout of botaoye/OSTrack and torch, cv2, timm and
OSTrack's other imports are importable (`make test-ostrack`, README "Reproducing OSTrack").
OSTrack's model is built from its own experiment config (vitb_256_mae_ce_32x4_ep300) with a
seeded random init, saved as OSTrack saves checkpoints ({'net': state_dict}), converted with our
converter into configs/ostrack_b256.py, and both trackers run on:
- many short sequences (2-3 frames, random frame sizes, boxes at the borders, tiny and large
  targets): at least 97% of the tracked boxes within 0.5 px of OSTrack's in every coordinate;
- a few long ones (300 frames of moving synthetic targets): mean IoU against OSTrack's >= 0.99.
Both run in float32 on the CPU. The figures are printed (pytest -s).
"""

import os

import numpy as np
import pytest

from configs import ostrack_b256
from lgtrack_jax.models import lgtrack
from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.tracking.tracker import LGTracker
from lgtrack_jax.weights import convert, pretrained

ROOT = os.environ.get("OSTRACK_ROOT")
if not ROOT:
  pytest.skip("OSTRACK_ROOT is not set: the OSTrack parity test needs a checkout of "
              "botaoye/OSTrack (README: Reproducing OSTrack)", allow_module_level=True)
_WHY = "is needed to run OSTrack's own code (make test-ostrack installs it aside)"
pytest.importorskip("torch", reason=f"torch {_WHY}")
# pylint: disable=wrong-import-position
from tests.parity import ostrack_reference as ref  # before timm imports torchvision

for _module in ("cv2", "timm", "easydict", "yaml"):
  pytest.importorskip(_module, reason=f"{_module} {_WHY}")

pytestmark = pytest.mark.parity

NUM_SHORT, NUM_LONG, LONG_FRAMES = 120, 2, 300
# Frame sizes fall in three of our frame buckets (one compilation each): small frames, where
# the search crop is larger than the frame, and two larger ones.
SIZES = (((90, 128), (100, 128)), ((300, 384), (400, 512)), ((600, 640), (641, 768)))


@pytest.fixture(scope="module")
def trackers(tmp_path_factory):
  """(OSTrack's tracker, ours) from one seeded random checkpoint."""
  ref.load(ROOT)
  model, cfg = ref.build_model(ROOT, seed=0)
  path = str(tmp_path_factory.mktemp("ostrack") / "OSTrack_ep0300.pth.tar")
  ref.save_checkpoint(model, path)
  theirs = ref.make_tracker(ROOT, cfg, path)
  config = ostrack_b256.get_config()
  dst = str(tmp_path_factory.mktemp("converted"))
  report = convert.convert("ostrack", path, dst, config)
  assert sorted(report["ignored"]) == ["backbone.cls_token", "backbone.pos_embed"]
  assert report["not_loaded"] == []
  ours = LGTracker(lgtrack.build_model(config), pretrained.load_weights(config, dst), config,
                   None)
  return theirs, ours


def _texture(rng, h: int, w: int) -> np.ndarray:
  """A smooth random image with noise: bilinear weights matter, unlike on flat colours."""
  coarse = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float64)
  ys, xs = np.linspace(0, coarse.shape[0] - 1.001, h), np.linspace(0, coarse.shape[1] - 1.001, w)
  y0, x0 = ys.astype(int), xs.astype(int)
  wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  img = ((coarse[y0][:, x0] * (1 - wx) + coarse[y0][:, x0 + 1] * wx) * (1 - wy)
         + (coarse[y0 + 1][:, x0] * (1 - wx) + coarse[y0 + 1][:, x0 + 1] * wx) * wy)
  return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def _random_box(rng, h: int, w: int) -> np.ndarray:
  """A first box: tiny (2-8 px), ordinary or large (up to the frame), often at a border."""
  kind = rng.integers(3)
  if kind == 0:
    bw, bh = rng.uniform(2, 8, 2)
  elif kind == 1:
    bw, bh = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
  else:
    bw, bh = rng.uniform(0.5, 1.0) * w, rng.uniform(0.5, 1.0) * h
  x = rng.choice([0.0, w - bw, rng.uniform(0, w - bw)])
  y = rng.choice([0.0, h - bh, rng.uniform(0, h - bh)])
  return np.round(np.array([x, y, bw, bh]), 2)  # files give boxes to a few decimals


def _short_sequences(seed: int = 0):
  rng = np.random.default_rng(seed)
  for _ in range(NUM_SHORT):
    (h_lo, h_hi), (w_lo, w_hi) = SIZES[rng.integers(len(SIZES))]
    h, w = int(rng.integers(h_lo, h_hi + 1)), int(rng.integers(w_lo, w_hi + 1))
    frames = [_texture(rng, h, w) for _ in range(int(rng.integers(2, 4)))]
    yield frames, _random_box(rng, h, w)


def _long_sequence(seed: int):
  """A textured target moving and scaling over a textured background."""
  rng = np.random.default_rng(100 + seed)
  h, w = 360, 480
  background, target = _texture(rng, h, w), _texture(rng, 200, 200)
  frames, boxes = [], []
  for t in range(LONG_FRAMES):
    size = int(50 + 30 * np.sin(t / 40))
    cx = w / 2 + 150 * np.sin(t / 50 + seed)
    cy = h / 2 + 100 * np.cos(t / 35)
    x0, y0 = int(cx - size / 2), int(cy - size / 2)
    frame = background.copy()
    frame[y0:y0 + size, x0:x0 + size] = target[:size, :size]
    frames.append(frame)
    boxes.append([x0, y0, size, size])
  return frames, np.asarray(boxes[0], np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.asarray(box_ops.iou_xyxy(box_ops.xywh_to_xyxy(a), box_ops.xywh_to_xyxy(b))[0])


def test_short_sequences_match_ostrack(trackers):
  theirs, ours = trackers
  close, total, worst = 0, 0, 0.0
  for frames, box in _short_sequences():
    expected = ref.track(theirs, frames, box)
    got, _ = ours.track(frames, box, None, "bbox")
    np.testing.assert_array_equal(got[0], expected[0])  # the first box is the given one
    diff = np.abs(got[1:] - expected[1:]).max(axis=1)
    close += int((diff <= 0.5).sum())
    total += len(diff)
    worst = max(worst, float(diff.max()))
  share = close / total
  print(f"\nOSTrack parity, short sequences: {close}/{total} boxes ({100 * share:.2f}%) within "
        f"0.5 px of OSTrack's in every coordinate; largest difference {worst:.3f} px")
  assert share >= 0.97


def test_long_sequences_match_ostrack(trackers):
  theirs, ours = trackers
  ious = []
  for seed in range(NUM_LONG):
    frames, box = _long_sequence(seed)
    expected = ref.track(theirs, frames, box)
    got, _ = ours.track(frames, box, None, "bbox")
    ious.append(_iou(got, expected).mean())
    print(f"\nOSTrack parity, long sequence {seed} ({len(frames)} frames): mean IoU "
          f"{ious[-1]:.4f} against OSTrack's boxes")
  assert min(ious) >= 0.99
