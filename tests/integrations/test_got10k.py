"""The GOT-10k toolkit (`got10k==0.1.3`) runs and scores `LGTrackGOT10k` as eval.py does.

A small `val` split in the GOT-10k layout is made from synthetic sequences (moving shapes); the
toolkit's `ExperimentGOT10k` tracks it with the micro model through the per-frame API, eval.py's
runner tracks it in batch, and the two agree box for box and on AO.
"""

import os
import shutil

import matplotlib

matplotlib.use("Agg")  # the toolkit's report plots through pyplot: never open a window

# pylint: disable=wrong-import-position
import numpy as np
import pytest
from got10k.experiments import ExperimentGOT10k

from input_pipeline import sources, synthetic
from lgtrack_jax.evaluation import results, runner
from lgtrack_jax.integrations import got10k as got10k_lib
from tests.conftest import micro_config


def _write_got10k_sequence(folder: str, seq) -> None:
  """One synthetic (LaSOT-layout) sequence rewritten in the GOT-10k layout, as both the toolkit
  (`got10k/datasets/got10k.py`: *.jpg, groundtruth.txt, meta_info.ini with `resolution`, and the
  cover / absence / cut_by_image labels) and our reader read it."""
  os.makedirs(folder)
  for k, frame in enumerate(seq.frames):
    shutil.copyfile(frame, os.path.join(folder, f"{k + 1:08d}.jpg"))
  boxes = seq.boxes  # 0-based, GOT-10k's convention (the synthetic files are 1-based)
  h, w = seq.load_frame(0).shape[:2]
  cut = ((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 0] + boxes[:, 2] > w)
         | (boxes[:, 1] + boxes[:, 3] > h))
  columns = {"groundtruth.txt": [",".join(f"{v:.4f}" for v in b) for b in boxes],
             "absence.label": [str(int(a)) for a in seq.absent],
             "cover.label": ["0" if a else "8" for a in seq.absent],
             "cut_by_image.label": [str(int(c)) for c in cut]}
  for name, lines in columns.items():
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
  with open(os.path.join(folder, "meta_info.ini"), "w", encoding="utf-8") as f:
    f.write(f"[METAINFO]\nobject_class: {seq.name.split('-')[0]}\nmotion_class: moving\n"
            f"major_class: shape\nroot_class: object\nmotion_adverb: smoothly\n"
            f"resolution: ({w}, {h})\n")


@pytest.fixture(scope="module")
def got10k_root(tmp_path_factory):
  """<root>/val/ with 4 sequences of 12 frames (192x144) and list.txt."""
  synth = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(synth, num_train=0, num_test=4, num_frames=12, seed=5)
  root = str(tmp_path_factory.mktemp("got10k"))
  names = []
  for k, seq in enumerate(sources.load("synthetic", synth, "test"), 1):
    names.append(f"GOT-10k_Val_{k:06d}")
    _write_got10k_sequence(os.path.join(root, "val", names[-1]), seq)
  with open(os.path.join(root, "val", "list.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(names) + "\n")
  return root


def test_toolkit_ao_equals_eval_py_ao(got10k_root, workdir, tmp_path):
  tracker = got10k_lib.LGTrackGOT10k(micro_config(), checkpoint=workdir)
  assert tracker.mode == "bbox" and tracker.is_deterministic
  experiment = ExperimentGOT10k(got10k_root, subset="val", result_dir=str(tmp_path / "results"),
                                report_dir=str(tmp_path / "reports"))
  experiment.run(tracker)
  performance = experiment.report([tracker.name])
  toolkit_ao = 100.0 * performance[tracker.name]["overall"]["ao"]  # the toolkit's AO is in [0, 1]

  ours = str(tmp_path / "eval")
  record = runner.run(config=micro_config(), checkpoint=workdir, dataset="got10k",
                      data_root=got10k_root, split="val", results_dir=ours, mode="bbox",
                      tracker="lgtrack", analyze_only=False, sequences_file=None,
                      protocol="official", validity="all4")
  print(f"GOT-10k val AO: toolkit {toolkit_ao:.3f}, eval.py {record['ao']:.3f} (percent)")
  assert record["protocol"] == "got10k" and record["num_sequences"] == 4
  assert abs(toolkit_ao - record["ao"]) < 0.5

  # Box for box: the toolkit's files keep 3 decimals, ours 4.
  for name in experiment.dataset.seq_names:
    theirs = np.loadtxt(os.path.join(tmp_path, "results", "GOT-10k", tracker.name, name,
                                     f"{name}_001.txt"), delimiter=",")
    np.testing.assert_allclose(theirs, results.read_result(os.path.join(ours, f"{name}.txt")),
                               atol=1e-3, rtol=0)
  per_sequence = performance[tracker.name]["seq_wise"]
  for name, scores in record["per_sequence"].items():
    assert abs(100.0 * per_sequence[name]["ao"] - scores["ao"]) < 0.5


def test_sentences_follow_the_sequence(got10k_root, workdir):
  with pytest.raises(ValueError, match="needs sentences"):
    got10k_lib.LGTrackGOT10k(micro_config(), checkpoint=workdir, mode="nl_bbox")
  tracker = got10k_lib.LGTrackGOT10k(micro_config(), checkpoint=workdir, mode="nl_bbox",
                                     sentences={"GOT-10k_Val_000001": "the red circle"})
  frame = np.zeros((48, 64, 3), np.uint8)
  tracker.set_sequence("GOT-10k_Val_000002")
  with pytest.raises(ValueError, match="no sentence for sequence 'GOT-10k_Val_000002'"):
    tracker.init(frame, [4, 4, 10, 10])
  seq_dir = os.path.join(got10k_root, "val", "GOT-10k_Val_000001")
  assert got10k_lib.sequence_name(os.path.join(seq_dir, "00000001.jpg")) == "GOT-10k_Val_000001"
  assert got10k_lib.sequence_name("/d/LaSOT/cat/cat-1/img/00000001.jpg") == "cat-1"
