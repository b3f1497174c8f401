"""Synthetic data: determinism, LaSOT layout read back by the real reader, and its guarantees."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from input_pipeline import synthetic
from input_pipeline.sources import lasot

# Small but complete: 80 frames leave room for out-of-view spans, and indices 3, 6 and 9 of the
# train split carry the absent spans (occlusion, out of view, either).
_ARGS = {"num_train": 10, "num_test": 4, "num_frames": 80, "seed": 7,
         "image_size": (160, 120)}
_W, _H = _ARGS["image_size"]
_SENTENCE = re.compile(r"the (\w+) (\w+)(?: moving (left|right|up|down))?")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
  out = tmp_path_factory.mktemp("synthetic") / "data"
  synthetic.generate(str(out), **_ARGS)
  return out


@pytest.fixture(scope="module")
def splits(data_dir) -> dict[str, list]:
  return {s: lasot.load_split(str(data_dir), s, "synthetic") for s in ("train", "test")}


def _files(root: Path) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
          if p.is_file()}


def test_deterministic(data_dir, tmp_path):
  again = tmp_path / "again"
  synthetic.generate(str(again), **_ARGS, workers=1)  # thread count must not matter
  first, second = _files(data_dir), _files(again)
  assert sorted(first) == sorted(second)
  assert len(first) == 14 * (80 + 4) + 4  # frames + 4 text files per sequence; lists, markers
  for name, content in first.items():
    assert content == second[name], name


def test_seed_and_split_streams_differ():
  a = synthetic.plan_sequence(0, "train", 0, 20)
  assert not np.array_equal(a.background, synthetic.plan_sequence(0, "test", 0, 20).background)
  assert not np.array_equal(a.background, synthetic.plan_sequence(1, "train", 0, 20).background)
  assert not np.array_equal(a.background, synthetic.plan_sequence(0, "train", 1, 20).background)


def test_layout_and_sentences(data_dir, splits):
  assert (data_dir / "COMPLETE").is_file()
  train, test = splits["train"], splits["test"]
  assert len(train) == 10 and len(test) == 4
  names = [s.name for s in train + test]
  assert len(set(names)) == len(names)
  for split, seqs in splits.items():
    for i, seq in enumerate(seqs):
      assert len(seq) == 80 and seq.dataset == "synthetic"
      m = _SENTENCE.fullmatch(seq.sentence)
      assert m, seq.sentence
      colour, shape = m.group(1), m.group(2)
      assert colour in synthetic.PALETTE and shape in synthetic.SHAPES
      assert Path(seq.frames[0]).parents[2].name == shape == seq.name.rsplit("-", 1)[0]
      plan = synthetic.plan_sequence(_ARGS["seed"], split, i, 80, (_W, _H))
      assert plan.sentence == seq.sentence and plan.target.shape == shape


def test_boxes_inside_image_and_on_target(splits):
  for split, seqs in splits.items():
    for i, seq in enumerate(seqs):
      present = ~seq.absent
      x, y, w, h = seq.boxes[present].T  # 0-based
      assert (w >= 1).all() and (h >= 1).all()
      assert (x >= 0).all() and (y >= 0).all() and (x + w <= _W).all() and (y + h <= _H).all()
      assert (w <= 42).all() and (h <= 42).all()
      # Frame 0: fully visible (not touching a border) and the box holds the target colour.
      assert not seq.absent[0]
      x0, y0, w0, h0 = seq.boxes[0].astype(int)
      assert x0 > 0 and y0 > 0 and x0 + w0 < _W and y0 + h0 < _H and min(w0, h0) >= 12
      colour = synthetic.PALETTE[seq.sentence.split()[1]]
      crop = seq.load_frame(0)[y0:y0 + h0, x0:x0 + w0].astype(np.float64)
      near = np.linalg.norm(crop - colour, axis=-1) < 60
      assert near.mean() > 0.25, (seq.name, near.mean())
      # Tight: on the lossless render, every edge row and column of the box touches the target.
      plan = synthetic.plan_sequence(_ARGS["seed"], split, i, 80, (_W, _H))
      img, box, occluded = synthetic.render_frame(plan, 0)
      assert box == (x0, y0, x0 + w0, y0 + h0) and not occluded
      exact = np.all(np.asarray(img)[y0:y0 + h0, x0:x0 + w0] == colour, axis=-1)
      assert exact[0].any() and exact[-1].any() and exact[:, 0].any() and exact[:, -1].any()


def test_distractors_share_exactly_one_attribute():
  kinds = set()
  for split, count in (("train", 40), ("test", 10)):
    for i in range(count):
      plan = synthetic.plan_sequence(3, split, i, 10)
      t = plan.target
      assert 1 <= len(plan.distractors) <= 3
      shares = [(d.colour == t.colour, d.shape == t.shape) for d in plan.distractors]
      assert all(c != s for c, s in shares), (split, i, shares)
      if len(shares) >= 2:
        assert any(c for c, _ in shares) and any(s for _, s in shares)
      kinds.add(len(shares))
      assert all(d.centers.shape == (10, 2) and d.sizes.shape == (10,) for d in plan.distractors)
  assert kinds == {1, 2, 3}


def test_absent_flags_match_zero_rows(data_dir, splits):
  kinds = set()
  for seqs in splits.values():
    for seq in seqs:
      seq_dir = Path(seq.frames[0]).parents[1]
      rows = (seq_dir / "groundtruth.txt").read_text().splitlines()
      occ = np.array((seq_dir / "full_occlusion.txt").read_text().split(",")) == "1"
      oov = np.array((seq_dir / "out_of_view.txt").read_text().split(",")) == "1"
      assert not (occ & oov).any()
      np.testing.assert_array_equal(occ | oov, [r == "0,0,0,0" for r in rows])
      np.testing.assert_array_equal(seq.absent, occ | oov)
      if seq.absent.any():
        idx = np.flatnonzero(seq.absent)
        assert idx[0] >= 10 and idx[-1] < len(seq) - 1
        assert idx[-1] - idx[0] + 1 == len(idx) and 5 <= len(idx) <= 12  # one short span
        kinds.add("occlusion" if occ.any() else "out_of_view")
  assert kinds == {"occlusion", "out_of_view"}


def test_occluder_hides_the_target():
  seen = 0
  for i in range(3, 60, 10):  # occlusion by index
    plan = synthetic.plan_sequence(2, "train", i, 60, (_W, _H))
    occ = plan.occluder
    assert occ is not None and 5 <= occ.stop - occ.start <= 12 and occ.start >= 10
    for t in range(occ.start, occ.stop):
      img, box, occluded = synthetic.render_frame(plan, t)
      assert occluded and box is not None
      left, top, right, bottom = box
      hidden = np.asarray(img)[top:bottom, left:right]
      assert (hidden == occ.colour).all()  # the target's whole footprint box is the patch
      seen += 1
  assert seen > 0


def test_out_of_view_on_a_large_image():
  plan = synthetic.plan_sequence(0, "train", 6, 100, (640, 480))
  absent = [synthetic.render_frame(plan, t)[1] is None for t in range(100)]
  idx = np.flatnonzero(absent)
  assert 5 <= len(idx) <= 12 and idx[-1] - idx[0] + 1 == len(idx) and idx[0] >= 10


def test_short_sequences_have_no_absence(tmp_path):
  synthetic.main(["--out", str(tmp_path / "d"), "--num_train", "10", "--num_test", "1",
                  "--num_frames", "12", "--seed", "1"])
  seqs = lasot.load_split(str(tmp_path / "d"), "train", "synthetic")
  assert len(seqs) == 10 and all(len(s) == 12 and not s.absent.any() for s in seqs)


def test_marker_handling(tmp_path):
  out = tmp_path / "d"
  small = {"num_train": 1, "num_test": 1, "num_frames": 3}
  synthetic.generate(str(out), **small)
  (out / "keep").write_text("x")
  synthetic.generate(str(out), **small)  # complete for the same arguments: left alone
  assert (out / "keep").exists()
  (out / "COMPLETE").unlink()  # as if interrupted: wiped and regenerated
  synthetic.generate(str(out), **small)
  assert not (out / "keep").exists() and (out / "COMPLETE").is_file()
  (out / "keep").write_text("x")
  synthetic.generate(str(out), **small, seed=5)  # other arguments: regenerated
  assert not (out / "keep").exists()
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "precious.txt").write_text("x")
  with pytest.raises(ValueError, match="refusing"):
    synthetic.generate(str(foreign), **small)
  assert (foreign / "precious.txt").exists()
