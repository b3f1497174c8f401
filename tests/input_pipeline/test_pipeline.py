"""Tests of the tf.data pipeline on tiny generated sequences (a red rectangle on a dark frame)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from configs import tiny
from input_pipeline import pipeline, sampler
from input_pipeline.sources.base import DataError, Sequence
from lgtrack_jax.ops import crop

W, H = 96, 72  # frame size
BG = (20, 20, 60)
FG = (240, 40, 40)
N = 12  # frames per sequence
MAX_LEN = 10
BATCH = 16  # global batch of the tests


def fake_tokenize(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """[N, MAX_LEN] ids / mask: [CLS] word ids [SEP], padded."""
  ids = np.zeros((len(sentences), MAX_LEN), np.int32)
  mask = np.zeros((len(sentences), MAX_LEN), np.int32)
  for r, s in enumerate(sentences):
    toks = ([101] + [1000 + sum(map(ord, w)) % 500 for w in s.split()] + [102])[:MAX_LEN]
    ids[r, :len(toks)] = toks
    mask[r, :len(toks)] = 1
  return ids, mask


def true_boxes(shift: int) -> np.ndarray:
  """[N, 4] integer x, y, w, h, 0-based, inside the frame."""
  k = np.arange(N)
  return np.stack([10 + 5 * k + shift, 8 + 3 * k, 16 + k, 12 + k // 2], axis=1)


def write_sequence(root: pathlib.Path, name: str, boxes: np.ndarray, absent: np.ndarray,
                   sentence: str | None, coord_base: int = 0) -> Sequence:
  """Writes N JPEG frames with the rectangle drawn where visible; returns the record."""
  d = root / name / "img"
  d.mkdir(parents=True)
  frames = []
  for k in range(N):
    img = np.empty((H, W, 3), np.uint8)
    img[:] = BG
    if not absent[k]:
      x, y, w, h = boxes[k]
      img[y:y + h, x:x + w] = FG
    path = d / f"{k + 1:08d}.jpg"
    # 4:4:4 keeps colour edges sharp so centroids measure geometry, not chroma subsampling.
    Image.fromarray(img).save(path, quality=95, subsampling=0)
    frames.append(str(path))
  gt = boxes.astype(np.float64) + np.array([coord_base, coord_base, 0, 0])
  gt[absent] = np.nan
  return Sequence(dataset="toy", name=name, frames=tuple(frames), gt=gt, absent=absent.copy(),
                  sentence=sentence, coord_base=coord_base)


def make_sequences(root: pathlib.Path) -> list[Sequence]:
  """4 sequences: plain (1-based file coords), with absent frames, no sentence, unusable."""
  none = np.zeros(N, bool)
  gaps = none.copy()
  gaps[[3, 4, 5, 9]] = True
  almost_gone = np.ones(N, bool)
  almost_gone[2] = False
  return [
      write_sequence(root, "plain-1", true_boxes(0), none, "the red box", coord_base=1),
      write_sequence(root, "gaps-1", true_boxes(2), gaps, "a red block moving right"),
      write_sequence(root, "mute-1", true_boxes(1), none, None),
      write_sequence(root, "gone-1", true_boxes(0), almost_gone, "nothing"),
  ]


def config(**data):
  c = tiny.get_config()
  for k, v in data.items():
    setattr(c.data, k, v)
  return c


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[list[Sequence], sampler.Index]:
  seqs = make_sequences(tmp_path_factory.mktemp("toy"))
  return seqs, sampler.build_index(seqs, fake_tokenize, MAX_LEN)


def take(index, cfg, *, seed=0, start_step=0, steps=1, process_index=0, process_count=1,
         global_batch=BATCH):
  it = pipeline.batches(index, cfg, seed=seed, start_step=start_step,
                        process_index=process_index, process_count=process_count,
                        global_batch=global_batch)
  return [next(it) for _ in range(steps)]


def draws(index, cfg, n: int, seed: int = 0) -> dict[str, np.ndarray]:
  """The discrete choices (seq, template, search, mode) of samples 0..n-1; decodes nothing."""
  s = pipeline._Sampler(index, cfg, seed)  # pylint: disable=protected-access

  def choose(i):
    c = s.draw(i)
    return {k: c[k] for k in ("seq", "template", "search", "mode")}

  ds = tf.data.Dataset.range(n).map(choose)
  return {k: v.numpy() for k, v in next(iter(ds.batch(n))).items()}


@pytest.fixture(scope="module")
def choices(toy) -> dict[str, np.ndarray]:
  """Choices of samples 0..599, tiny config, seed 0 (only `mode` depends on mode_probs)."""
  _, index = toy
  return draws(index, config(), 600)


@pytest.fixture(scope="module")
def stream(toy) -> list[dict[str, np.ndarray]]:
  """Steps 0..4 of the tiny config's stream, seed 0, one host, global batch BATCH."""
  _, index = toy
  return take(index, config(), steps=5)


def test_shapes_and_dtypes(stream):
  cfg = config()
  tz, ts, b = cfg.data.template_size, cfg.data.search_size, BATCH
  want = {
      "template": ((b, tz, tz, 3), np.uint8),
      "search": ((b, ts, ts, 3), np.uint8),
      "template_box": ((b, 4), np.float32),
      "search_box": ((b, 4), np.float32),
      "text_ids": ((b, MAX_LEN), np.int32),
      "text_mask": ((b, MAX_LEN), np.int32),
      "mode": ((b,), np.int32),
      "index": ((b,), np.int64),
  }
  assert {k: (v.shape, v.dtype) for k, v in stream[0].items()} == want
  for step, batch in enumerate(stream):
    np.testing.assert_array_equal(batch["index"], np.arange(step * b, (step + 1) * b))


def test_deterministic_and_resumable(tmp_path, stream):
  cfg = config()
  other = sampler.build_index(make_sequences(tmp_path), fake_tokenize, MAX_LEN)
  rebuilt = take(other, cfg, steps=2)
  resumed = take(other, cfg, start_step=3, steps=2)
  for x, y in zip(stream[:2] + stream[3:], rebuilt + resumed, strict=True):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_host_count_independent(toy, stream):
  _, index = toy
  cfg = config()
  step = 2
  one = stream[step]
  halves = [take(index, cfg, start_step=step, process_index=h, process_count=2)[0]
            for h in range(2)]
  union = np.concatenate([h["index"] for h in halves])
  np.testing.assert_array_equal(np.sort(union), one["index"])
  row = {int(i): r for r, i in enumerate(one["index"])}
  for h in halves:
    for r, i in enumerate(h["index"]):
      for k in h:
        assert h[k][r].tobytes() == one[k][row[int(i)]].tobytes(), (k, int(i))


def test_only_visible_frames_within_gap(toy, choices):
  _, index = toy
  c = draws(index, config(max_gap=3), 400)
  seq, t, s = c["seq"], c["template"], c["search"]
  assert index.visible[t].all() and index.visible[s].all()
  assert (np.abs(s - t) <= 3).all()
  start, end = index.seq_start[seq], index.seq_start[seq] + index.seq_len[seq]
  assert ((t >= start) & (t < end) & (s >= start) & (s < end)).all()
  # Every visible frame of every sequence is reachable.
  np.testing.assert_array_equal(np.unique(np.concatenate([t, s])), index.vis_frames)
  np.testing.assert_array_equal(c["seq"], choices["seq"][:400])  # max_gap only moves search
  assert not np.array_equal(draws(index, config(), 100, seed=1)["seq"], choices["seq"][:100])


def test_modes_and_text(toy, choices, stream):
  _, index = toy
  seq, mode = choices["seq"], choices["mode"]
  mute = index.seq_names.index("mute-1")
  assert (mode[seq == mute] == 0).all()
  talk = mode[seq != mute]
  freq = np.bincount(talk, minlength=3) / len(talk)
  p = np.asarray(config().data.mode_probs)
  assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(talk)) + 1e-9), freq

  b = {k: np.concatenate([x[k] for x in stream]) for k in stream[0]}
  m0 = b["mode"] == 0
  assert m0.any() and (~m0).any()
  np.testing.assert_array_equal(b["mode"], mode[:len(m0)])
  assert not b["text_mask"][m0].any() and not b["text_ids"][m0].any()
  assert b["text_mask"][~m0].any(axis=1).all()


def centroid(image: np.ndarray) -> np.ndarray:
  """(x, y) index-space centroid of the red rectangle in an RGB crop."""
  d = np.clip(image[..., 0].astype(np.float32) - image[..., 1], 0, None)
  w = np.where(d > 0.25 * d.max(), d, 0)  # intensity weights; the cut drops JPEG ringing
  ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
  return np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()


def test_crop_puts_target_at_box(stream):
  # The tiny config: search centre jitter 3, scale jitter 0.25, brightness jitter 0.2.
  checked = 0
  for b in stream:
    for r in range(len(b["mode"])):
      pairs = [("search", "search_box")]
      if b["mode"][r] != 1:
        pairs.append(("template", "template_box"))
      for img_key, box_key in pairs:
        img, (cx, cy, w, h) = b[img_key][r], b[box_key][r]
        if min(cx - w / 2, cy - h / 2) < 0 or max(cx + w / 2, cy + h / 2) > 1:
          continue  # the jitter pushed part of the target out of the crop
        size = img.shape[0]
        err = centroid(img) - (np.array([cx, cy]) * size - 0.5)
        # Measured <= 0.15 px; a half-pixel slip in the convention would cost ~0.9 px here.
        assert np.abs(err).max() < 0.5, (img_key, r, err)
        checked += 1
  assert checked > 40


def test_language_only_search_is_whole_frame(toy, choices):
  seqs, index = toy
  cfg = config(brightness_jitter=0.0, mode_probs=(0.0, 1.0, 0.0))
  (b,) = take(index, cfg)
  ts = cfg.data.search_size
  np.testing.assert_array_equal(b["mode"] == 1, index.has_sentence[choices["seq"][:BATCH]])
  for r in np.flatnonzero(b["mode"] == 1):
    flat = int(choices["search"][r])
    s, f = index.locate(flat)
    seq = next(q for q in seqs if q.name == index.seq_names[s])
    frame = seq.load_frame(f)
    want = crop.bilinear_crop_reference(frame, 0, 0, W, H, ts, ts)
    # Pillow and TF decode JPEG identically (accurate IDCT), so only uint8 rounding is left.
    assert np.abs(b["search"][r].astype(np.float32) - want).max() <= 1.0
    x, y, w, h = seq.boxes[f]
    np.testing.assert_allclose(b["search_box"][r], [(x + w / 2) / W, (y + h / 2) / H, w / W, h / H],
                               atol=1e-6)
    assert not b["template"][r].any()
    np.testing.assert_array_equal(b["template_box"][r], [0.5, 0.5, 1.0, 1.0])
    assert b["text_mask"][r].any()


def test_flip_mirrors_images_and_boxes(toy, stream):
  _, index = toy
  a = stream[0]  # flip_prob 0
  (f,) = take(index, config(flip_prob=1.0))
  for k in ("search", "template"):  # flipped sample positions may round differently
    assert np.abs(f[k].astype(int) - a[k][:, :, ::-1]).max() <= 1, k
  for k in ("search_box", "template_box"):
    np.testing.assert_allclose(f[k][:, 0], 1 - a[k][:, 0], atol=1e-6)
    np.testing.assert_array_equal(f[k][:, 1:], a[k][:, 1:])


def test_corrupt_frame_is_named(tmp_path, choices):
  index = sampler.build_index(make_sequences(tmp_path), fake_tokenize, MAX_LEN)
  cfg = config()
  step = 1
  flat = int(choices["search"][BATCH + 3])  # a frame step 1 decodes (same layout as `toy`)
  path = str(index.frame_paths[flat])
  with open(path, "wb") as f:
    f.write(b"not a JPEG " * 30)
  s, frame = index.locate(flat)
  with pytest.raises(DataError) as e:
    take(index, cfg, start_step=step)
  msg = str(e.value)
  assert path in msg and f"frame={frame}" in msg and index.seq_names[s] in msg, msg
  assert "dataset=toy" in msg, msg
