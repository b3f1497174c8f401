"""eval's protocols on the real-data fixtures: LaSOT real annotations (OPE, --analyze_only), TNL2K
and OTB99-Lang (OPE), GOT-10k val (its own protocol), GOT-10k / TrackingNet test (submissions)."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from input_pipeline import sources
from lgtrack_jax.evaluation import got10k_metrics, metrics, results, runner
from tests.input_pipeline import layouts

ANNOS = Path(__file__).resolve().parents[1] / "data" / "lasot_test_annos"
REAL = ("lion-5", "microphone-6", "tiger-6")


def _run(dataset, root, out, **kw):
  args = dict(config=None, checkpoint=None, dataset=dataset, data_root=str(root), split="test",
              results_dir=str(out), mode="bbox", tracker="static", analyze_only=False,
              sequences_file=None, protocol="official", validity="all4")
  args.update(kw)
  return runner.run(**args)


def _noisy(gt, seed):
  rng = np.random.default_rng(seed)
  pred = np.nan_to_num(gt) + rng.normal(0, 8, gt.shape)
  pred[:, 2:] = np.abs(pred[:, 2:]) + 1
  return pred


def test_lasot_real_annotations_analyze_only_equals_direct_metrics(tmp_path):
  root = tmp_path / "lasot"
  for name in REAL:
    gt = np.loadtxt(ANNOS / "groundtruth" / f"{name}.txt", delimiter=",")
    absent = np.loadtxt(ANNOS / "absent" / f"{name}.txt", delimiter=",").astype(int).ravel()
    seq = layouts.write_lasot(root, name, len(gt), gt=gt, real=False)
    (seq / "full_occlusion.txt").write_text(",".join(map(str, absent)))
  (root / "testing_set.txt").write_text("".join(f"{n}\n" for n in REAL))
  seqs = sources.load("lasot", str(root), "test")
  assert [s.name for s in seqs] == list(REAL)
  out = tmp_path / "noisy"
  curves = []
  for k, seq in enumerate(seqs):
    pred = _noisy(seq.gt, k)
    results.write_result(str(out), seq.name, pred, None)
    curves.append(metrics.sequence_curves(pred, seq.gt, seq.absent))
  direct = metrics.summarize(curves)
  for protocol in ("official", "pytracking"):
    record = _run("lasot", root, out, analyze_only=True, protocol=protocol)
    if protocol == "official":
      assert record["auc"] == pytest.approx(direct["auc"], abs=1e-9)
      assert record["precision"] == pytest.approx(direct["precision"], abs=1e-9)
      assert record["norm_precision"] == pytest.approx(direct["norm_precision"], abs=1e-9)
  # lion-5 #553 `1,1,-1,-1` is present but invalid: pytracking fails it for precision.
  assert record["protocol"] == "pytracking"


@pytest.mark.parametrize("dataset", ["tnl2k", "otb99_lang"])
def test_language_benchmarks_run_end_to_end(tmp_path, dataset):
  root = tmp_path / dataset
  if dataset == "tnl2k":
    for name in ("advSamp_Baseball_game_002-Done", "Car_video_05"):
      layouts.write_tnl2k(root / "test", name, real=False)
  else:
    for name in ("Biker", "Coke"):
      layouts.write_otb_video(root, name, 6, {"groundtruth_rect.txt": layouts.rows_text(
          layouts.boxes(6) + 1, sep="\t")})
      layouts.write_otb_query(root, "test", name, f"the {name.lower()}")
  record = _run(dataset, root, tmp_path / "out", mode="nl_bbox")
  assert record["protocol"] == "official" and record["num_sequences"] == 2
  seqs = sources.load(dataset, str(root), "test")
  direct = metrics.summarize([metrics.sequence_curves(np.repeat(s.gt[:1], len(s), 0), s.gt,
                                                      s.absent) for s in seqs])
  assert record["auc"] == pytest.approx(direct["auc"]) and 0 < record["auc"] < 95.24


def test_got10k_val_scores_with_its_own_protocol(tmp_path):
  split = tmp_path / "got10k" / "val"
  names = ["GOT-10k_Val_000001", "GOT-10k_Val_000002"]
  layouts.write_got10k_list(split, names)
  moving = layouts.boxes(8) + np.arange(8)[:, None] * [3, 0, 0, 0]  # the target moves right
  layouts.write_got10k(split, names[0], 8, rows=moving, cover=[8, 8, 0, 8, 8, 8, 8, 8],
                       absence=[0, 0, 1, 0, 0, 0, 0, 0])
  layouts.write_got10k(split, names[1], 5)
  record = _run("got10k", tmp_path / "got10k", tmp_path / "out", split="val")
  seqs = sources.load("got10k", str(tmp_path / "got10k"), "val")
  expected = got10k_metrics.summarize([
      got10k_metrics.sequence_ious(np.repeat(s.gt[:1], len(s), 0), s.gt, s.cover, (32, 24))
      for s in seqs])
  assert record["protocol"] == "got10k"
  for key in ("ao", "sr50", "sr75"):
    assert record[key] == pytest.approx(expected[key])
  assert 0 < record["ao"] < 100 and expected["num_frames"] == 6 + 4  # frame 0 and cover 0 out
  with open(tmp_path / "out" / "metrics.json", encoding="utf-8") as f:
    assert json.load(f)["ao"] == pytest.approx(record["ao"])
  assert os.path.getsize(record["plots"][0]) > 1000


def test_server_scored_splits_write_submissions(tmp_path):
  split = tmp_path / "got10k" / "test"
  layouts.write_got10k_list(split, ["GOT-10k_Test_000001"])
  layouts.write_got10k(split, "GOT-10k_Test_000001", 5, test=True)
  record = _run("got10k", tmp_path / "got10k", tmp_path / "got_out")
  with zipfile.ZipFile(record["submission"]) as z:
    assert sorted(z.namelist()) == ["GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt",
                                    "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt"]
    rows = z.read("GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt").decode().splitlines()
  assert len(rows) == 5 and "auc" not in record and "got-10k" in record["server"]

  layouts.write_trackingnet(tmp_path / "trackingnet", "TEST", "abc_1", 4, first_row_only=True)
  record = _run("trackingnet", tmp_path / "trackingnet", tmp_path / "tn_out")
  with zipfile.ZipFile(record["submission"]) as z:
    assert z.namelist() == ["abc_1.txt"]
  with pytest.raises(ValueError, match="evaluation server"):
    _run("trackingnet", tmp_path / "trackingnet", tmp_path / "tn_train", split="train")


def test_per_attribute_breakdown(tmp_path):
  root = tmp_path / "lasot"
  for name in REAL:
    gt = np.loadtxt(ANNOS / "groundtruth" / f"{name}.txt", delimiter=",")
    layouts.write_lasot(root, name, len(gt), gt=gt, real=False)
  (root / "testing_set.txt").write_text("".join(f"{n}\n" for n in REAL))
  seqs = sources.load("lasot", str(root), "test")
  att = tmp_path / "att"
  att.mkdir()
  flags = {"lion-5": [1] + [0] * 13, "microphone-6": [1, 1] + [0] * 12, "tiger-6": [0, 1] + [0] * 12}
  for name, f in flags.items():
    (att / f"{name}.txt").write_text(",".join(map(str, f)) + "\n")
  out = tmp_path / "noisy"
  curves = {}
  for k, seq in enumerate(seqs):
    pred = _noisy(seq.gt, k)
    results.write_result(str(out), seq.name, pred, None)
    curves[seq.name] = metrics.sequence_curves(pred, seq.gt, seq.absent)
  record = _run("lasot", root, out, analyze_only=True, attributes_dir=str(att),
                compare=f"same={out}")
  per = record["per_attribute"]
  assert set(per) == {"Illumination Variation", "Partial Occlusion"}  # the others: nobody
  iv = metrics.summarize([curves["lion-5"], curves["microphone-6"]])
  assert per["Illumination Variation"]["auc"] == pytest.approx(iv["auc"])
  assert per["Partial Occlusion"]["num_sequences"] == 2
  assert os.path.getsize(record["attribute_plot"]) > 1000
  # Named columns, and the errors name the file.
  (att / "names.txt").write_text("\n".join(f"a{i}" for i in range(14)))
  assert "a0" in _run("lasot", root, out, analyze_only=True, attributes_dir=str(att))[
      "per_attribute"]
  (att / "tiger-6.txt").write_text("0,2\n")
  with pytest.raises(ValueError, match="tiger-6.txt: line 1: flags must be 0 or 1"):
    _run("lasot", root, out, analyze_only=True, attributes_dir=str(att))
  os.remove(att / "tiger-6.txt")
  with pytest.raises(ValueError, match="no attribute file for 1 sequence.*tiger-6"):
    _run("lasot", root, out, analyze_only=True, attributes_dir=str(att))
