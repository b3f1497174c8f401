"""LaSOT-layout reader: hand-written fixtures for each error case, and real LaSOT annotations."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from input_pipeline.sources import lasot
from input_pipeline.sources.base import DataError

_ROWS = ["10,20,30,40", "11,21,31,41", "12,22,32,42", "13,23,33,43", "14,24,34,44"]


# Real LaSOT annotations of the sequences below, vendored from the official toolkit (Apache-2.0).
_LASOT_ANNOS = Path(__file__).resolve().parents[1] / "data" / "lasot_test_annos"


def _write_seq(root: Path, name: str = "cat-1", gt: str | None = None,
               occlusion: str | None = None, out_of_view: str | None = None,
               nlp: str | None = "the cat", frames: int | list[int] | None = None,
               image: bytes | None = None) -> Path:
  """Writes one sequence in LaSOT layout; None leaves a file out, `frames` defaults to the rows."""
  gt = "\n".join(_ROWS) + "\n" if gt is None else gt
  n = len([line for line in gt.splitlines() if line.strip()])
  seq = root / name.rsplit("-", 1)[0] / name
  (seq / "img").mkdir(parents=True)
  (seq / "groundtruth.txt").write_text(gt)
  zeros = ",".join(["0"] * n)
  (seq / "full_occlusion.txt").write_text(zeros if occlusion is None else occlusion)
  (seq / "out_of_view.txt").write_text(zeros if out_of_view is None else out_of_view)
  if nlp is not None:
    (seq / "nlp.txt").write_text(nlp)
  numbers = range(1, n + 1) if frames is None else (
      range(1, frames + 1) if isinstance(frames, int) else frames)
  for k in numbers:
    (seq / "img" / f"{k:08d}.jpg").write_bytes(image or b"")
  return seq


def _raises(seq: Path, *fragments: str, **kwargs) -> DataError:
  with pytest.raises(DataError) as info:
    lasot.read_sequence(str(seq), **kwargs)
  for f in fragments:
    assert f in str(info.value), (f, str(info.value))
  return info.value


def test_reads_sequence(tmp_path):
  seq_dir = _write_seq(tmp_path, nlp="  the black cat\n")
  seq = lasot.read_sequence(str(seq_dir))
  assert seq.name == "cat-1" and seq.dataset == "lasot" and seq.coord_base == 1
  assert len(seq) == 5 and seq.sentence == "the black cat"
  assert seq.gt.dtype == np.float64 and seq.gt.shape == (5, 4)
  np.testing.assert_array_equal(seq.gt[2], [12, 22, 32, 42])
  np.testing.assert_array_equal(seq.boxes[0], [9, 19, 30, 40])
  assert seq.absent.dtype == bool and not seq.absent.any()
  assert seq.frames[0] == str(seq_dir / "img" / "00000001.jpg")
  assert seq.frames[-1].endswith("00000005.jpg") and os.path.isabs(seq.frames[-1])


@pytest.mark.parametrize("occlusion, out_of_view", [
    ("0,1,0,0,0", "0,0,0,0,1"),  # one comma-separated line, as LaSOT writes them
    ("0\n1\n0\n0\n0\n", "0\n0\n0\n0\n1"),  # one value per line
    ("0, 1, 0, 0, 0\n\n", "0,0,0,0,1\r\n"),  # spaces, blank trailing lines, CRLF
])
def test_flag_formats(tmp_path, occlusion, out_of_view):
  seq = lasot.read_sequence(str(_write_seq(tmp_path, occlusion=occlusion,
                                           out_of_view=out_of_view)))
  np.testing.assert_array_equal(seq.absent, [False, True, False, False, True])


def test_nan_zero_and_degenerate_rows(tmp_path):
  gt = "10,20,30,40\nNaN,NaN,NaN,NaN\n0,0,0,0\n1,1,-1,-1\nnan,5,6,7"  # no trailing newline
  seq = lasot.read_sequence(str(_write_seq(tmp_path, gt=gt)))
  np.testing.assert_array_equal(seq.absent, [False, True, True, False, True])
  np.testing.assert_array_equal(seq.gt[3], [1, 1, -1, -1])  # kept as written
  assert np.isnan(seq.gt[1]).all() and np.isnan(seq.gt[4, 0]) and seq.gt[4, 3] == 7


def test_crlf_trailing_blank_lines_and_floats(tmp_path):
  gt = "10.5,20,30,40\r\n 11 , 21,31,41\r\n1e1,2,3,4\r\n-1,-2,3,4\r\n5,6,7,8\r\n\r\n\r\n"
  seq = lasot.read_sequence(str(_write_seq(tmp_path, gt=gt)))
  np.testing.assert_array_equal(seq.gt[:3], [[10.5, 20, 30, 40], [11, 21, 31, 41], [10, 2, 3, 4]])


@pytest.mark.parametrize("gt, line, text", [
    ("1,2,3,4\n1,2,3\n1,2,3,4\n", 2, "found 3"),
    ("1,2,3,4\n1,2,3,4\n1,2,3,4,5\n", 3, "found 5"),
    ("1,2,3,4\n1 2 3 4\n", 2, "found 1"),
    ("1,2,3,4\n1,2,3,4\n1,2,x,4\n", 3, "'1,2,x,4'"),
    ("1,2,3,4\n1,2,,4\n", 2, "unparsable"),
    ("1,2,3,4\n1,2,inf,4\n", 2, "'inf'"),
    ("1,2,3,4\n1,2,3_0,4\n", 2, "'3_0'"),
    ("1,2,3,4\n\n1,2,3,4\n", 2, "empty line"),
    ("1,2,3,4\n  \t\n1,2,3,4\n", 2, "empty line"),
])
def test_bad_groundtruth(tmp_path, gt, line, text):
  seq = _write_seq(tmp_path, gt=gt, frames=3)
  _raises(seq, str(seq / "groundtruth.txt"), f"line={line}", text, "sequence=cat-1",
          "dataset=lasot")


def test_empty_groundtruth(tmp_path):
  seq = _write_seq(tmp_path, gt="\n\n", frames=0)
  _raises(seq, str(seq / "groundtruth.txt"), "empty file")


def test_missing_groundtruth(tmp_path):
  seq = _write_seq(tmp_path)
  (seq / "groundtruth.txt").unlink()
  _raises(seq, str(seq / "groundtruth.txt"), "missing file")


def test_row_count_differs_from_frames(tmp_path):
  seq = _write_seq(tmp_path, frames=4)
  err = _raises(seq, str(seq / "img"), "4 .jpg images", "5 rows")
  assert "00000005.jpg" in str(err)  # the first missing frame is named too
  seq = _write_seq(tmp_path / "b", frames=7)
  _raises(seq, "7 .jpg images", "5 rows")


def test_missing_frame_named(tmp_path):
  # As many images as rows, but frame 3 is missing (an extra, unrelated number stands in).
  seq = _write_seq(tmp_path, frames=[1, 2, 4, 5, 9])
  _raises(seq, str(seq / "img" / "00000003.jpg"), "missing frame", "frame=2")


def test_missing_image_dir(tmp_path):
  seq = _write_seq(tmp_path)
  shutil.rmtree(seq / "img")
  _raises(seq, str(seq / "img"), "missing image directory")


@pytest.mark.parametrize("which", ["full_occlusion", "out_of_view"])
def test_flag_length_mismatch(tmp_path, which):
  seq = _write_seq(tmp_path, **{("occlusion" if which == "full_occlusion" else which):
                                "0,0,0,0"})
  _raises(seq, str(seq / f"{which}.txt"), "4 flags", "5 rows")


@pytest.mark.parametrize("flags, line, text", [
    ("0,0,2,0,0", 1, "'2'"),
    ("0\n0\n0\n1\n-1", 5, "'-1'"),
    ("0,0,0,0,0,", 1, "''"),
    ("0,0\n\n0,0,0", 2, "empty line"),
    ("0,0,0.0,0,0", 1, "'0.0'"),
])
def test_bad_flags(tmp_path, flags, line, text):
  seq = _write_seq(tmp_path, out_of_view=flags)
  _raises(seq, str(seq / "out_of_view.txt"), f"line={line}", text)


def test_missing_flag_file(tmp_path):
  seq = _write_seq(tmp_path)
  (seq / "full_occlusion.txt").unlink()
  _raises(seq, str(seq / "full_occlusion.txt"), "missing file")


def test_sentence_errors(tmp_path):
  seq = _write_seq(tmp_path, nlp=None)
  _raises(seq, str(seq / "nlp.txt"), "missing file")
  assert lasot.read_sequence(str(seq), require_sentence=False).sentence is None
  # An empty sentence loads as "" (box-only tracking and scoring need none); what needs one
  # refuses it naming the sequence (eval's text modes: tests/evaluation/test_faults.py).
  (seq / "nlp.txt").write_text(" \n\t\n")
  assert lasot.read_sequence(str(seq)).sentence == ""
  assert lasot.read_sequence(str(seq), require_sentence=False).sentence == ""
  (seq / "nlp.txt").write_bytes(b"\xff\xfe\x00bad")
  _raises(seq, str(seq / "nlp.txt"), "UTF-8")


def test_corrupt_jpeg(tmp_path):
  seq_dir = _write_seq(tmp_path, image=b"this is not a jpeg")
  seq = lasot.read_sequence(str(seq_dir))  # images are not decoded while reading
  with pytest.raises(DataError) as info:
    seq.load_frame(3)
  msg = str(info.value)
  assert str(seq_dir / "img" / "00000004.jpg") in msg and "frame=3" in msg and "corrupt" in msg


def test_load_frame_decodes(tmp_path):
  seq_dir = _write_seq(tmp_path)
  Image.new("RGB", (8, 6), (200, 10, 10)).save(seq_dir / "img" / "00000002.jpg", quality=95)
  frame = lasot.read_sequence(str(seq_dir)).load_frame(1)
  assert frame.shape == (6, 8, 3) and frame.dtype == np.uint8 and frame[0, 0, 0] > 150


def test_load_split(tmp_path):
  for name in ["cat-1", "cat-2", "dog-1", "dog-3"]:
    _write_seq(tmp_path, name=name, nlp=f"the {name}")
  (tmp_path / "training_set.txt").write_text("cat-1\ndog-1\ncat-2")  # no trailing newline
  (tmp_path / "testing_set.txt").write_text("dog-3\n\n")
  train = lasot.load_split(str(tmp_path), "train")
  assert [s.name for s in train] == ["cat-1", "dog-1", "cat-2"]
  assert train[1].sentence == "the dog-1"
  test = lasot.load_split(str(tmp_path), "test", dataset="lasot_ext")
  assert [(s.name, s.dataset) for s in test] == [("dog-3", "lasot_ext")]
  picked = lasot.load_split(str(tmp_path), "train", sequences=["cat-2", "cat-1"])
  assert [s.name for s in picked] == ["cat-1", "cat-2"]  # split-list order
  with pytest.raises(DataError, match="dog-3"):
    lasot.load_split(str(tmp_path), "train", sequences=["dog-3"])
  with pytest.raises(ValueError):
    lasot.load_split(str(tmp_path), "val")


def test_split_list_errors(tmp_path):
  _write_seq(tmp_path, name="cat-1")
  with pytest.raises(DataError) as info:  # only LaSOT / LaSOT_ext have built-in lists
    lasot.load_split(str(tmp_path), "test", dataset="synthetic")
  assert str(tmp_path / "testing_set.txt") in str(info.value) and "no split list" in str(info.value)
  # A listed sequence without its folder is a partial download: reported, not refused ...
  (tmp_path / "testing_set.txt").write_text("cat-1\ncat-9\n")
  listing = lasot.list_split(str(tmp_path), "test")
  assert [r.name for r in listing.refs] == ["cat-1"] and listing.missing == ("cat-9",)
  assert [s.name for s in lasot.load_split(str(tmp_path), "test")] == ["cat-1"]
  # ... unless it was asked for by name.
  with pytest.raises(DataError, match="not on disk: \\['cat-9'\\]"):
    lasot.load_split(str(tmp_path), "test", sequences=["cat-9"])
  (tmp_path / "testing_set.txt").write_text("cat-8\n")
  with pytest.raises(DataError, match="none of the 1 sequences"):
    lasot.load_split(str(tmp_path), "test")
  (tmp_path / "testing_set.txt").write_text("cat-1\ncat-1\n")
  with pytest.raises(DataError, match="line=2"):
    lasot.load_split(str(tmp_path), "test")
  # A malformed sequence inside a split surfaces with its own file and line.
  (tmp_path / "testing_set.txt").write_text("cat-1\n")
  (tmp_path / "cat" / "cat-1" / "groundtruth.txt").write_text("1,2,3,4\n1,2\n1,2,3,4\n"
                                                               "1,2,3,4\n1,2,3,4\n")
  with pytest.raises(DataError, match="line=2"):
    lasot.load_split(str(tmp_path), "test")


# The real LaSOT test annotations, laid out as LaSOT with empty placeholder frames.
_REAL = {"lion-5": (553, [1, 1, -1, -1]), "microphone-6": (1109, [1, 1, 0, 0]),
         "tiger-6": (118, [613, 731, 247, -11])}


def test_real_lasot_annotations(tmp_path):
  annos = _LASOT_ANNOS
  for name in _REAL:
    seq = tmp_path / name.rsplit("-", 1)[0] / name
    (seq / "img").mkdir(parents=True)
    shutil.copy(annos / "groundtruth" / f"{name}.txt", seq / "groundtruth.txt")
    shutil.copy(annos / "nlp" / f"{name}.txt", seq / "nlp.txt")
    shutil.copy(annos / "absent" / f"{name}.txt", seq / "full_occlusion.txt")  # one per line
    n = len((seq / "groundtruth.txt").read_text().split())
    (seq / "out_of_view.txt").write_text(",".join(["0"] * n))  # one comma-separated line
    for k in range(1, n + 1):
      (seq / "img" / f"{k:08d}.jpg").touch()
  (tmp_path / "testing_set.txt").write_text("\n".join(_REAL))
  seqs = lasot.load_split(str(tmp_path), "test")
  for seq in seqs:
    name = seq.name
    absent_file = np.loadtxt(annos / "absent" / f"{name}.txt", dtype=np.int64)
    gt_file = np.loadtxt(annos / "groundtruth" / f"{name}.txt", delimiter=",")
    assert len(seq) == len(absent_file) == len(gt_file)
    np.testing.assert_array_equal(seq.gt, gt_file)
    line, row = _REAL[name]
    np.testing.assert_array_equal(seq.gt[line - 1], row)  # degenerate rows kept as written
    assert seq.absent.sum() == absent_file.sum()
    np.testing.assert_array_equal(seq.absent, absent_file == 1)
    assert seq.sentence == (annos / "nlp" / f"{name}.txt").read_text().strip()
  assert [len(s) for s in seqs] == [2451, 1767, 2295]
