"""The dataset readers: each layout, each known quirk, each bad input, partial downloads.

Fixtures are written in each dataset's exact layout by `layouts.py` (frames are empty files:
readers never decode), plus the real LaSOT annotations of lion-5, microphone-6 and tiger-6.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from input_pipeline import sources
from input_pipeline.sources import lasot_splits, otb99_lang, parsing
from input_pipeline.sources.base import DataError
from tests.input_pipeline import layouts

_ANNOS = Path(__file__).resolve().parents[1] / "data" / "lasot_test_annos"
_SHARED_ANNOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "lasot_test_annos"


def _raises(fn, *fragments: str) -> str:
  with pytest.raises(DataError) as info:
    fn()
  msg = str(info.value)
  for f in fragments:
    assert f in msg, (f, msg)
  return msg


def _scan(name, root, split, **kw) -> sources.Split:
  return sources.scan(name, str(root), split, cache=False, **kw)


# ------------------------------------------------------------------------------------ LaSOT


def test_lasot_official_lists():
  train, test = lasot_splits.lasot_split("train"), lasot_splits.lasot_split("test")
  assert len(train) == 1120 and len(test) == 280 and not set(train) & set(test)
  classes = {n.rsplit("-", 1)[0] for n in train + test}
  assert len(classes) == 70
  assert all(sum(n.startswith(c + "-") for n in test) == 4 for c in classes)
  assert test[:4] == ["airplane-1", "airplane-9", "airplane-13", "airplane-15"]
  if _SHARED_ANNOS.is_dir():  # the full official test set, when the shared data is there
    assert set(test) == {p.stem for p in (_SHARED_ANNOS / "groundtruth").glob("*.txt")}
  ext = lasot_splits.lasot_ext_split("test")
  assert len(ext) == 150 and ext[0] == "atv-1" and ext[-1] == "wingsuit-10"


def _real_lasot(root: Path, names: list[str]) -> None:
  """Real LaSOT annotations in the LaSOT layout, with empty frames."""
  for name in names:
    seq = root / name.rsplit("-", 1)[0] / name
    seq.mkdir(parents=True)
    shutil.copy(_ANNOS / "groundtruth" / f"{name}.txt", seq / "groundtruth.txt")
    shutil.copy(_ANNOS / "nlp" / f"{name}.txt", seq / "nlp.txt")
    flags = (_ANNOS / "absent" / f"{name}.txt").read_text().split()
    (seq / "full_occlusion.txt").write_text(",".join(flags))  # one comma-separated line
    (seq / "out_of_view.txt").write_text(",".join(["0"] * len(flags)))
    layouts.write_frames(seq / "img", [f"{k:08d}.jpg" for k in range(1, len(flags) + 1)],
                         real=False)


def test_lasot_partial_download_with_real_annotations(tmp_path):
  names = ["lion-5", "microphone-6", "tiger-6"]
  _real_lasot(tmp_path, names)  # no split lists: the official ones apply
  split = _scan("lasot", tmp_path, "test")
  assert [s.name for s in split.sequences] == names  # official (class) order
  assert split.partial and split.found == 3 and split.expected == 280
  assert len(split.missing) == 277 and "airplane-1" in split.missing
  assert "3 of 280 sequences" in split.describe_partial()
  degenerate = {"lion-5": (553, [1, 1, -1, -1]), "microphone-6": (1109, [1, 1, 0, 0]),
                "tiger-6": (118, [613, 731, 247, -11])}
  for seq in split.sequences:
    line, row = degenerate[seq.name]
    np.testing.assert_array_equal(seq.gt[line - 1], row)  # kept as written
    flags = np.loadtxt(_ANNOS / "absent" / f"{seq.name}.txt") == 1
    zero = np.all(seq.gt == 0, axis=1)
    np.testing.assert_array_equal(seq.absent, flags | zero)
    assert seq.coord_base == 1 and seq.sentence
  lion = split.sequences[0]
  assert lion.absent[549:552].all() and not lion.absent[552]  # 0,0,0,0 rows, then 1,1,-1,-1
  with pytest.raises(DataError, match="not on disk"):
    _scan("lasot", tmp_path, "test", sequences=["airplane-1"])
  with pytest.raises(DataError, match="none of the 1120 sequences"):
    _scan("lasot", tmp_path, "train")  # all three are test sequences


def test_lasot_root_lists_still_win(tmp_path):
  layouts.write_lasot(tmp_path, "cat-1", real=False)
  layouts.write_lasot(tmp_path, "cat-2", real=False)
  (tmp_path / "training_set.txt").write_text("cat-2\ncat-1\n")
  split = _scan("lasot", tmp_path, "train")
  assert [s.name for s in split.sequences] == ["cat-2", "cat-1"] and not split.partial


def test_lasot_ext(tmp_path):
  layouts.write_lasot(tmp_path, "atv-3", real=False)
  split = _scan("lasot_ext", tmp_path, "test")
  assert [s.dataset for s in split.sequences] == ["lasot_ext"] and split.expected == 150
  _raises(lambda: _scan("lasot_ext", tmp_path, "train"), "only a 'test' split")


def test_lasot_missing_sentence_file(tmp_path):
  seq = layouts.write_lasot(tmp_path, "cat-1", sentence=None, real=False)
  (tmp_path / "training_set.txt").write_text("cat-1\n")
  _raises(lambda: _scan("lasot", tmp_path, "train"), "missing file", str(seq / "nlp.txt"),
          "sequence=cat-1", "dataset=lasot")


# ------------------------------------------------------------------------------------ TNL2K


def test_tnl2k_layout_and_quirks(tmp_path):
  test_dir = tmp_path / "TNL2K_test_subset"
  rows = layouts.boxes(6)
  rows[1] = [0, 5, 10, 8]  # x == 0: a real box in 0-based coordinates
  rows[2] = [-3, 5, 10, 8]  # negative x: the box leaves the image
  rows[3] = [0, 0, 0, 0]  # the only absence marker
  rows[4] = [np.nan] * 4  # NaN rows are absent too
  layouts.write_tnl2k(test_dir, "Arrow_Video_ZZ04_done", rows, real=False)
  layouts.write_tnl2k(test_dir, "Assassin_video_1-Done", n=5, ext=".png", real=False)
  split = _scan("tnl2k", tmp_path, "test")
  a, b = split.sequences
  assert a.name == "Arrow_Video_ZZ04_done" and a.coord_base == 0
  np.testing.assert_array_equal(a.absent, [False, False, False, True, True, False])
  np.testing.assert_array_equal(a.boxes[1], [0, 5, 10, 8])  # 0-based: no shift
  np.testing.assert_array_equal(a.boxes[2], [-3, 5, 10, 8])
  assert a.sentence == "a person in a red coat"
  assert b.frames[0].endswith("imgs/00001.png") and len(b) == 5
  assert split.partial and split.expected == 700 and split.found == 2


def test_tnl2k_split_folders(tmp_path):
  layouts.write_tnl2k(tmp_path / "TNL2K_train_subset_p1", "a_1", real=False)
  # A part extracted inside its own folder (one level of nesting).
  layouts.write_tnl2k(tmp_path / "TNL2K_train_subset_p2" / "TNL2K_train_subset_p2", "b_1",
                      real=False)
  assert [s.name for s in _scan("tnl2k", tmp_path, "train").sequences] == ["a_1", "b_1"]
  _raises(lambda: _scan("tnl2k", tmp_path, "test"), "no folder of split 'test'")
  flat = tmp_path / "flat"  # the root is a split folder itself
  layouts.write_tnl2k(flat, "c_1", real=False)
  (flat / ".lgtrack_index").mkdir()  # non-sequence folders are skipped
  assert [s.name for s in _scan("tnl2k", flat, "test").sequences] == ["c_1"]


def test_tnl2k_numeric_frame_order(tmp_path):
  names = [f"{k}.jpg" for k in range(1, 13)]  # unpadded: 10.jpg must follow 9.jpg
  layouts.write_tnl2k(tmp_path / "test", "s", n=12, names=names, real=False)
  seq = _scan("tnl2k", tmp_path, "test").sequences[0]
  assert [Path(f).name for f in seq.frames] == names


@pytest.mark.parametrize("case, fragments", [
    ("mixed_ext", ["mix the extensions"]),
    ("gap", ["missing frame", "00003.jpg", "frame=2"]),
    ("rows", ["5 rows", "6 frames", "groundtruth.txt"]),
    ("unparsable", ["unparsable value 'x'", "line=3", "groundtruth.txt"]),
    ("sentence", ["missing file", "language.txt"]),
    ("name", ["frame name is not a number", "cover.jpg"]),
])
def test_tnl2k_bad_input(tmp_path, case, fragments):
  split_dir = tmp_path / "test"
  names = [f"{k:05d}.jpg" for k in range(1, 7)]
  rows = layouts.boxes(6)
  sentence = "the dog"
  if case == "mixed_ext":
    names[3] = "00004.png"
  elif case == "gap":
    names[2] = "00007.jpg"
  elif case == "rows":
    rows = rows[:5]
  elif case == "name":
    names[5] = "cover.jpg"
  elif case == "sentence":
    sentence = None
  seq = layouts.write_tnl2k(split_dir, "s", rows, names=names, sentence=sentence, real=False)
  if case == "unparsable":
    lines = (seq / "groundtruth.txt").read_text().splitlines()
    lines[2] = "1,2,x,4"
    (seq / "groundtruth.txt").write_text("\n".join(lines) + "\n")
  msg = _raises(lambda: _scan("tnl2k", tmp_path, "test"), *fragments)
  assert "dataset=tnl2k" in msg and "sequence=s" in msg


# ------------------------------------------------------------------------------- OTB99-Lang


def test_otb_mixed_delimiters(tmp_path):
  text = "10,20,30,40\n11\t21\t31\t41\n12  22 32   42\n13, 23,\t33 ,43\n14,24,34,44\r\n"
  layouts.write_otb_video(tmp_path, "Biker", 5, {"groundtruth_rect.txt": text})
  layouts.write_otb_query(tmp_path, "test", "Biker", "a man riding a bike\n")
  split = _scan("otb99_lang", tmp_path, "test")
  (seq,) = split.sequences
  np.testing.assert_array_equal(seq.gt[:, 0], [10, 11, 12, 13, 14])
  np.testing.assert_array_equal(seq.gt[3], [13, 23, 33, 43])
  assert seq.coord_base == 1 and seq.sentence == "a man riding a bike"
  assert seq.frames[0].endswith("OTB_videos/Biker/img/0001.jpg")
  assert split.expected == 48 and split.partial


@pytest.mark.parametrize("video", sorted(otb99_lang.FRAME_RANGES))
def test_otb_frame_ranges(tmp_path, video):
  first, last = otb99_lang.FRAME_RANGES[video]
  n = last - first + 1
  layouts.write_otb_video(tmp_path, video, last + 7,  # images beyond the range exist too
                          {"groundtruth_rect.txt": layouts.rows_text(layouts.boxes(n))})
  layouts.write_otb_query(tmp_path, "train", video, "the target")
  (seq,) = _scan("otb99_lang", tmp_path, "train").sequences
  assert len(seq) == n and Path(seq.frames[0]).name == f"{first:04d}.jpg"
  assert Path(seq.frames[-1]).name == f"{last:04d}.jpg"
  # One row too many would shift frames against boxes: refused.
  (tmp_path / "OTB_videos" / video / "groundtruth_rect.txt").write_text(
      layouts.rows_text(layouts.boxes(n + 1)))
  _raises(lambda: _scan("otb99_lang", tmp_path, "train"), f"{n + 1} rows",
          f"images {first}..{last}")


def test_otb_board_five_digits(tmp_path):
  layouts.write_otb_video(tmp_path, "Board", 9, {"groundtruth_rect.txt":
                                                 layouts.rows_text(layouts.boxes(9))}, digits=5)
  layouts.write_otb_query(tmp_path, "test", "Board", "a board")
  (seq,) = _scan("otb99_lang", tmp_path, "test").sequences
  assert Path(seq.frames[0]).name == "00001.jpg" and len(seq) == 9


def test_otb_multi_target(tmp_path):
  one, two = layouts.boxes(7), layouts.boxes(7, x0=15)
  layouts.write_otb_video(tmp_path, "Jogging", 7, {
      "groundtruth_rect.1.txt": layouts.rows_text(one),
      "groundtruth_rect.2.txt": layouts.rows_text(two, sep="\t")})
  layouts.write_otb_video(tmp_path, "Human4", 7, {
      "groundtruth_rect.2.txt": layouts.rows_text(one)})
  layouts.write_otb_video(tmp_path, "Skating2-1", 7, {  # a folder per target
      "groundtruth_rect.txt": layouts.rows_text(two)})
  for name in ("Jogging-1", "Jogging-2", "Human4-2", "Skating2-1"):
    layouts.write_otb_query(tmp_path, "train", name, f"target {name}")
  seqs = {s.name: s for s in _scan("otb99_lang", tmp_path, "train").sequences}
  assert sorted(seqs) == ["Human4-2", "Jogging-1", "Jogging-2", "Skating2-1"]
  np.testing.assert_array_equal(seqs["Jogging-1"].gt, one)
  np.testing.assert_array_equal(seqs["Jogging-2"].gt, two)
  assert seqs["Jogging-1"].frames == seqs["Jogging-2"].frames  # one shared image folder
  np.testing.assert_array_equal(seqs["Human4-2"].gt, one)
  np.testing.assert_array_equal(seqs["Skating2-1"].gt, two)
  assert seqs["Jogging-2"].sentence == "target Jogging-2"
  # A query naming the video of several targets without saying which one is ambiguous.
  layouts.write_otb_query(tmp_path, "train", "Jogging", "which one?")
  _raises(lambda: _scan("otb99_lang", tmp_path, "train"), "several targets", "Jogging-1.txt")


def test_otb_bad_input(tmp_path):
  layouts.write_otb_video(tmp_path, "Dog", 5, {"groundtruth_rect.txt":
                                               layouts.rows_text(layouts.boxes(6))})
  layouts.write_otb_query(tmp_path, "test", "Dog", "a dog")
  layouts.write_otb_query(tmp_path, "test", "Vase", "a vase")  # video not downloaded
  _raises(lambda: _scan("otb99_lang", tmp_path, "test"), "6 rows", "5 .jpg images",
          "FRAME_RANGES", "groundtruth_rect.txt")
  (tmp_path / "OTB_videos" / "Dog" / "groundtruth_rect.txt").write_text("1,2,3,4\n1 2 3\n")
  _raises(lambda: _scan("otb99_lang", tmp_path, "test"), "found 3", "line=2")
  (tmp_path / "OTB_videos" / "Dog" / "groundtruth_rect.txt").write_text(
      layouts.rows_text(layouts.boxes(5)))
  split = _scan("otb99_lang", tmp_path, "test")
  assert [s.name for s in split.sequences] == ["Dog"] and split.missing == ("Vase",)
  (tmp_path / "OTB_videos" / "Dog" / "img" / "0003.jpg").rename(
      tmp_path / "OTB_videos" / "Dog" / "img" / "0009.jpg")
  _raises(lambda: _scan("otb99_lang", tmp_path, "test"), "missing frame", "0003.jpg", "frame=2")


# ---------------------------------------------------------------------------------- GOT-10k


def test_got10k_labels_cover_and_meta(tmp_path):
  split_dir = tmp_path / "val"
  layouts.write_got10k(split_dir, "GOT-10k_Val_000001", absence=[0, 0, 1, 0, 0, 0],
                       cover=[8, 5, 0, 0, 3, 1])
  layouts.write_got10k(split_dir, "GOT-10k_Val_000002", meta="")
  layouts.write_got10k_list(split_dir, ["GOT-10k_Val_000001", "GOT-10k_Val_000002",
                                        "GOT-10k_Val_000003"])
  split = _scan("got10k", tmp_path, "val")
  a, b = split.sequences
  assert a.sentence is None and a.coord_base == 0
  np.testing.assert_array_equal(a.cover, [8, 5, 0, 0, 3, 1])
  assert a.cover.dtype == np.int8
  np.testing.assert_array_equal(a.absent, [0, 0, 1, 1, 0, 0])  # absence.label | cover == 0
  assert a.meta["object_class"] == "ichneumon" and a.meta["motion_class"] == "walking"
  assert b.meta is None
  assert split.missing == ("GOT-10k_Val_000003",) and split.partial
  assert a.frames[0].endswith("GOT-10k_Val_000001/00000001.jpg")


def test_got10k_test_split_first_row_only(tmp_path):
  layouts.write_got10k(tmp_path / "test", "GOT-10k_Test_000001", n=5, test=True)
  (seq,) = _scan("got10k", tmp_path, "test").sequences  # no list.txt: folders are listed
  assert len(seq) == 5 and seq.cover is None and seq.meta["annotated_frames"] == "1"
  assert np.isfinite(seq.gt[0]).all() and np.isnan(seq.gt[1:]).all()
  np.testing.assert_array_equal(seq.absent, [False, True, True, True, True])


@pytest.mark.parametrize("case, fragments", [
    ("cover_value", ["cover.label", "value '9'", "line=4"]),
    ("cover_rows", ["cover.label", "5 rows", "6 rows"]),
    ("absence_missing", ["absence.label", "missing file"]),
    ("frames", ["7 .jpg frames", "6 rows"]),
    ("meta", ["meta_info.ini", "malformed ini"]),
])
def test_got10k_bad_input(tmp_path, case, fragments):
  cover = [8, 8, 8, 9, 8, 8] if case == "cover_value" else None
  seq = layouts.write_got10k(tmp_path / "train", "GOT-10k_Train_000001", cover=cover,
                             meta="no section here\n" if case == "meta" else None)
  if case == "cover_rows":
    (seq / "cover.label").write_text("8\n" * 5)
  elif case == "absence_missing":
    (seq / "absence.label").unlink()
  elif case == "frames":
    (seq / "00000007.jpg").touch()
  msg = _raises(lambda: _scan("got10k", tmp_path, "train"), *fragments)
  assert "sequence=GOT-10k_Train_000001" in msg


# ------------------------------------------------------------------------------ TrackingNet


def test_trackingnet_layout_and_quirks(tmp_path):
  rows = layouts.boxes(12)
  rows[3] = [-12.5, -3.0, 40.25, 30.0]  # negative coordinates: the box leaves the image
  layouts.write_trackingnet(tmp_path, "TRAIN_0", "-0uOQ2Gw0CE_0", rows=rows)
  layouts.write_trackingnet(tmp_path, "TRAIN_0", "zipped_0", frames=False)  # not extracted
  layouts.write_trackingnet(tmp_path, "TRAIN_3", "abc_1", n=3)
  split = _scan("trackingnet", tmp_path, "train")
  a, b = split.sequences
  assert a.name == "-0uOQ2Gw0CE_0" and a.coord_base == 0 and a.sentence is None
  assert (tmp_path / "TRAIN_0" / "anno" / "-0uOQ2Gw0CE_0.txt").read_bytes().count(b"\r\n") == 12
  np.testing.assert_array_equal(a.gt[3], [-12.5, -3.0, 40.25, 30.0])
  assert not a.absent.any()
  assert [Path(f).name for f in a.frames] == [f"{k}.jpg" for k in range(12)]  # numeric order
  assert split.missing == ("zipped_0",)
  assert "TRAIN_1" in split.missing_parts and "TRAIN_0" not in split.missing_parts
  assert split.partial and "missing parts" in split.describe_partial()
  assert [s.name for s in _scan("trackingnet", tmp_path, "TRAIN_3").sequences] == ["abc_1"]


def test_trackingnet_test_split_and_bad_input(tmp_path):
  layouts.write_trackingnet(tmp_path, "TEST", "t_1", n=4, first_row_only=True)
  (seq,) = _scan("trackingnet", tmp_path, "test").sequences
  assert np.isnan(seq.gt[1:]).all() and seq.absent[1:].all() and not seq.absent[0]
  folder = layouts.write_trackingnet(tmp_path, "TRAIN_1", "g_1", n=12)
  (folder / "5.jpg").unlink()
  _raises(lambda: _scan("trackingnet", tmp_path, "train"), "missing frame",
          str(folder / "5.jpg"), "frame=5")
  (folder / "5.jpg").touch()
  (folder / "12.jpg").touch()
  _raises(lambda: _scan("trackingnet", tmp_path, "train"), "12 rows", "13 frames")


# --------------------------------------------------------------------------------- generic


def test_parse_boxes_nan_rows_and_errors(tmp_path):
  path = tmp_path / "gt.txt"
  path.write_text("1,2,3,4\nnan,nan,nan,nan\n5,6,7,8\n")
  gt = parsing.parse_boxes(str(path), "d", "s")
  assert np.isnan(gt[1]).all() and gt.shape == (3, 4)
  path.write_text("1,2,3,4\n1,2,inf,4\n")
  _raises(lambda: parsing.parse_boxes(str(path), "d", "s"), "'inf'", "line=2")
  path.write_text("1 2 3 4\n5\t6,7   8\n")
  np.testing.assert_array_equal(parsing.parse_boxes(str(path), "d", "s", delimiter="mixed"),
                                [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_every_registered_name_loads(tmp_path):
  """`sources.load` reads every dataset name through its reader (refcocog: test_refcocog.py)."""
  layouts.write_lasot(tmp_path / "lasot", "cat-1", real=False)
  layouts.write_lasot(tmp_path / "ext", "atv-1", real=False)
  layouts.write_lasot(tmp_path / "syn", "star-1", real=False)
  (tmp_path / "syn" / "testing_set.txt").write_text("star-1\n")
  layouts.write_tnl2k(tmp_path / "tnl2k" / "test", "s_1", real=False)
  layouts.write_otb_video(tmp_path / "otb", "Biker", 6,
                          {"groundtruth_rect.txt": layouts.rows_text(layouts.boxes(6))})
  layouts.write_otb_query(tmp_path / "otb", "test", "Biker", "a biker")
  layouts.write_got10k(tmp_path / "got" / "test", "GOT-10k_Test_000001", test=True)
  layouts.write_trackingnet(tmp_path / "tn", "TEST", "t_1", first_row_only=True)
  roots = {"lasot": "lasot", "lasot_ext": "ext", "synthetic": "syn", "tnl2k": "tnl2k",
           "otb99_lang": "otb", "got10k": "got", "trackingnet": "tn"}
  assert set(roots) | {"refcocog"} == set(sources.READERS)
  for name, root in roots.items():
    seqs = sources.load(name, str(tmp_path / root), "test")
    assert len(seqs) == 1 and seqs[0].dataset == name
  with pytest.raises(ValueError, match="unknown dataset"):
    sources.load("vot", str(tmp_path), "test")


def test_readers_do_not_import_tensorflow():
  code = ("import sys; from input_pipeline import sources; import input_pipeline.inspect; "
          "from input_pipeline.sources import got10k, lasot, otb99_lang, refcocog, tnl2k, "
          "trackingnet, index_cache; import input_pipeline.mixture; "
          "assert 'tensorflow' not in sys.modules, 'a reader imports TensorFlow'")
  subprocess.run([sys.executable, "-c", code], check=True,
                 cwd=Path(__file__).resolve().parents[2])


# ------------------------------------------------------------ scoring without frames, sentences


def _without_frames(name: str, root: Path) -> None:
  """One sequence of dataset `name` under `root` whose image folder is gone."""
  if name == "lasot":
    shutil.rmtree(layouts.write_lasot(root, "cat-1", real=False) / "img")
    (root / "testing_set.txt").write_text("cat-1\n")
  elif name == "tnl2k":
    shutil.rmtree(layouts.write_tnl2k(root / "test", "s_1", real=False) / "imgs")
  elif name == "otb99_lang":
    video = layouts.write_otb_video(root, "Biker", 6, {
        "groundtruth_rect.txt": layouts.rows_text(layouts.boxes(6))})
    layouts.write_otb_query(root, "test", "Biker", "a biker")
    shutil.rmtree(video / "img")
  else:  # got10k val: the frames sit in the sequence folder itself
    seq = layouts.write_got10k(root / "val", "GOT-10k_Val_000001")
    for frame in seq.glob("*.jpg"):
      frame.unlink()


@pytest.mark.parametrize("name", ["lasot", "tnl2k", "otb99_lang", "got10k"])
def test_ground_truth_loads_without_frames_for_scoring(tmp_path, name):
  """Scoring (`eval.py --analyze_only`) needs annotations only: frames_required=False reads a
  split whose images are gone (frames=()), and such a record is never cached for a later run
  that does need the frames."""
  split = "val" if name == "got10k" else "test"
  _without_frames(name, tmp_path / "root")
  layouts.age(tmp_path / "root")  # old enough for the index cache to trust
  root = str(tmp_path / "root")
  with pytest.raises(DataError, match="frame|image"):
    sources.load(name, root, split)
  (seq,) = sources.load(name, root, split, frames_required=False)
  assert seq.frames == () and not seq.has_frames and len(seq) == 6 == len(seq.gt)
  assert np.isfinite(seq.gt).all()
  with pytest.raises(DataError, match="not read"):
    seq.load_frame(0)
  with pytest.raises(DataError, match="frame|image"):  # not served from the index cache
    sources.load(name, root, split)


def test_16_bit_grayscale_frames_keep_their_top_8_bits(tmp_path):
  """Pillow's convert('RGB') clips 16-bit values at 255 (an all-white frame)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from input_pipeline.sources.base import Sequence  # pylint: disable=import-outside-toplevel
  ramp = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)
  path = tmp_path / "00000001.png"
  Image.fromarray(ramp).save(path)
  with Image.open(path) as im:
    assert im.mode.startswith("I")  # a 16-bit decode, not 8-bit L
  seq = Sequence(dataset="toy", name="t-1", frames=(str(path),), gt=np.ones((1, 4)),
                 absent=np.zeros(1, bool), sentence=None)
  frame = seq.load_frame(0)
  assert frame.dtype == np.uint8 and frame.shape == (24, 32, 3)
  np.testing.assert_array_equal(frame, np.repeat((ramp >> 8).astype(np.uint8)[..., None], 3, 2))
  assert frame.min() == 0 and 0 < frame.mean() < 255


def test_empty_sentence_keeps_the_split_loadable(tmp_path):
  """An empty or whitespace-only nlp.txt / language.txt loads as "": box-only tracking and
  scoring need no sentence (the text modes refuse it by name: tests/evaluation)."""
  layouts.write_lasot(tmp_path / "lasot", "cat-1", sentence=" \n\t", real=False)
  layouts.write_lasot(tmp_path / "lasot", "dog-1", real=False)
  (tmp_path / "lasot" / "testing_set.txt").write_text("cat-1\ndog-1\n")
  layouts.write_tnl2k(tmp_path / "tnl2k" / "test", "s_1", sentence="", real=False)
  lasot_seqs = sources.load("lasot", str(tmp_path / "lasot"), "test", cache=False)
  assert [s.sentence for s in lasot_seqs] == ["", "the object"]
  (tnl,) = sources.load("tnl2k", str(tmp_path / "tnl2k"), "test", cache=False)
  assert tnl.sentence == ""
