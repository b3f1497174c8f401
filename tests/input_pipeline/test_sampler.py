"""Tests of the training index (the crop geometry: tests/ops/test_crop.py)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from input_pipeline import sampler
from input_pipeline.sources.base import DataError, Sequence

N = 6  # frames per sequence
MAX_LEN = 8


def fake_tokenize(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """[N, 5] ids / mask (narrower than MAX_LEN on purpose: build_index pads)."""
  ids = np.zeros((len(sentences), 5), np.int32)
  mask = np.zeros((len(sentences), 5), np.int32)
  for r, s in enumerate(sentences):
    toks = [len(w) for w in s.split()][:5]
    ids[r, :len(toks)] = toks
    mask[r, :len(toks)] = 1
  return ids, mask


def write_sequence(root: pathlib.Path, name: str, absent: list[int], sentence: str | None,
                   coord_base: int = 1) -> Sequence:
  d = root / name / "img"
  d.mkdir(parents=True)
  frames = []
  for k in range(N):
    path = d / f"{k + 1:08d}.jpg"
    Image.new("RGB", (24, 16), (k * 10, 0, 0)).save(path)
    frames.append(str(path))
  gt = np.array([[2 + k, 3, 5, 4] for k in range(N)], np.float64)
  flags = np.zeros(N, bool)
  flags[absent] = True
  gt[absent[:1]] = np.nan  # one absent row as NaN, the others keep a stale box
  return Sequence(dataset="toy", name=name, frames=tuple(frames), gt=gt, absent=flags,
                  sentence=sentence, coord_base=coord_base)


@pytest.fixture
def seqs(tmp_path) -> list[Sequence]:
  return [
      write_sequence(tmp_path, "a-1", [], "red square left"),
      write_sequence(tmp_path, "b-1", [0, 1, 2, 3, 4], "only one visible"),  # dropped
      write_sequence(tmp_path, "c-1", [1, 4], None, coord_base=0),
  ]


def test_build_index_arrays(seqs):
  index = sampler.build_index(seqs, fake_tokenize, MAX_LEN)
  assert index.dataset == "toy" and index.seq_names == ["a-1", "c-1"]
  np.testing.assert_array_equal(index.seq_start, [0, N])
  np.testing.assert_array_equal(index.seq_len, [N, N])
  np.testing.assert_array_equal(index.vis_start, [0, N])
  np.testing.assert_array_equal(index.vis_count, [N, N - 2])
  np.testing.assert_array_equal(index.vis_frames, [0, 1, 2, 3, 4, 5, 6, 8, 9, 11])
  np.testing.assert_array_equal(index.visible, np.isin(np.arange(2 * N), index.vis_frames))
  assert index.frame_paths.shape == (2 * N,) and index.frame_paths[N] == seqs[2].frames[0]
  assert index.boxes.dtype == np.float32 and np.isfinite(index.boxes).all()
  np.testing.assert_array_equal(index.boxes[:N], seqs[0].boxes)  # 1-based file -> 0-based
  np.testing.assert_array_equal(index.boxes[index.vis_frames[N:]],
                                seqs[2].boxes[[0, 2, 3, 5]])
  assert index.text_ids.shape == index.text_mask.shape == (2, MAX_LEN)
  assert index.text_ids.dtype == index.text_mask.dtype == np.int32
  np.testing.assert_array_equal(index.text_ids[0], [3, 6, 4, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(index.text_mask[0], [1, 1, 1, 0, 0, 0, 0, 0])
  assert not index.text_mask[1].any() and not index.text_ids[1].any()
  np.testing.assert_array_equal(index.has_sentence, [True, False])
  assert index.locate(N + 3) == (1, 3) and index.locate(0) == (0, 0)


def test_missing_frame_is_named(seqs):
  os.remove(seqs[2].frames[4])
  with pytest.raises(DataError) as e:
    sampler.build_index(seqs, fake_tokenize, MAX_LEN)
  msg = str(e.value)
  assert seqs[2].frames[4] in msg and "sequence=c-1" in msg and "frame=4" in msg, msg


def test_empty_sentence_is_named(seqs):
  def silent(sentences):
    return np.zeros((len(sentences), 3), np.int32), np.zeros((len(sentences), 3), np.int32)

  with pytest.raises(DataError, match="sequence=a-1"):
    sampler.build_index(seqs, silent, MAX_LEN)
  blank = [seqs[0], dataclasses.replace(seqs[2], name="blank-1", sentence="  ")]
  with pytest.raises(DataError, match="sequence=blank-1"):
    sampler.build_index(blank, fake_tokenize, MAX_LEN)


def test_nothing_usable(seqs):
  with pytest.raises(DataError, match="no sequence"):
    sampler.build_index([seqs[1]], fake_tokenize, MAX_LEN)


@pytest.mark.parametrize("hosts", [1, 2, 4])
def test_host_split_covers_each_step(hosts):
  local = 8 // hosts
  for step in (0, 3):
    got = np.concatenate([sampler.host_sample_indices(step, h, hosts, local)
                          for h in range(hosts)])
    np.testing.assert_array_equal(np.sort(got), np.arange(step * 8, step * 8 + 8))


def test_sampler_does_not_import_tensorflow():
  code = ("import sys; import input_pipeline.sampler; "
          "assert 'tensorflow' not in sys.modules, 'sampler imports TensorFlow'")
  subprocess.run([sys.executable, "-c", code], check=True,
                 cwd=pathlib.Path(__file__).resolve().parents[2])
