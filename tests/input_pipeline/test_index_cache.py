"""The index cache: a root is parsed once, a changed file re-parses its sequence, no pickle."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from input_pipeline import sources
from input_pipeline.sources import index_cache
from input_pipeline.sources.base import DataError
from tests.input_pipeline import layouts


def _same(a: sources.Sequence, b: sources.Sequence) -> None:
  assert (a.dataset, a.name, a.frames, a.sentence, a.coord_base) == (
      b.dataset, b.name, b.frames, b.sentence, b.coord_base)
  np.testing.assert_array_equal(a.gt, b.gt)
  np.testing.assert_array_equal(a.absent, b.absent)
  assert (a.cover is None) == (b.cover is None)
  if a.cover is not None:
    np.testing.assert_array_equal(a.cover, b.cover)
  assert dict(a.meta or {}) == dict(b.meta or {})


@pytest.fixture
def got(tmp_path) -> Path:
  """A GOT-10k val split of 3 sequences (cover labels, meta, NaN rows), all files aged."""
  split_dir = tmp_path / "got" / "val"
  rows = layouts.boxes(6)
  rows[2] = np.nan
  names = [f"GOT-10k_Val_{k:06d}" for k in (1, 2, 3)]
  for name in names:
    layouts.write_got10k(split_dir, name, rows=rows, cover=[8, 7, 0, 5, 8, 8])
  layouts.write_got10k_list(split_dir, names)
  layouts.age(tmp_path / "got")
  return tmp_path / "got"


def test_second_scan_comes_from_the_cache(got):
  first = sources.scan("got10k", str(got), "val")
  assert first.cached == 0
  path = got / ".lgtrack_index" / "got10k-val.npz"  # next to the data
  assert path.is_file()
  second = sources.scan("got10k", str(got), "val")
  assert second.cached == 3
  for a, b in zip(first.sequences, second.sequences, strict=True):
    _same(a, b)
    assert not b.gt.flags.writeable and not b.absent.flags.writeable
  with np.load(path, allow_pickle=False) as z:  # plain arrays: nothing to unpickle
    assert "names" in z.files and z["names"].dtype.kind == "U"
  fresh = sources.scan("got10k", str(got), "val", cache=False)
  for a, b in zip(fresh.sequences, second.sequences, strict=True):
    _same(a, b)


def test_changed_file_invalidates_its_sequence(got):
  sources.scan("got10k", str(got), "val")
  seq_dir = got / "val" / "GOT-10k_Val_000002"
  (seq_dir / "cover.label").write_text("8\n8\n8\n8\n8\n1\n")  # same size, new mtime
  split = sources.scan("got10k", str(got), "val")
  assert split.cached == 2
  np.testing.assert_array_equal(split.sequences[1].cover, [8, 8, 8, 8, 8, 1])
  # A frame added to the folder changes its mtime: re-read, and here refused (7 frames, 6 rows).
  layouts.age(got)
  sources.scan("got10k", str(got), "val")
  (seq_dir / "00000007.jpg").touch()
  with pytest.raises(DataError, match="7 .jpg frames"):
    sources.scan("got10k", str(got), "val")


def test_fresh_files_are_not_trusted(tmp_path):
  layouts.write_tnl2k(tmp_path / "test", "s_1", real=False)  # mtimes: now
  assert sources.scan("tnl2k", str(tmp_path), "test").cached == 0
  assert sources.scan("tnl2k", str(tmp_path), "test").cached == 0  # still re-parsed
  layouts.age(tmp_path)
  sources.scan("tnl2k", str(tmp_path), "test")
  assert sources.scan("tnl2k", str(tmp_path), "test").cached == 1


def test_cache_dir_selection_and_partial_rescans(tmp_path, got):
  cache_dir = tmp_path / "cache"
  sources.scan("got10k", str(got), "val", sequences=["GOT-10k_Val_000003"],
               cache_dir=str(cache_dir))
  (path,) = cache_dir.iterdir()
  assert path.name.startswith("got10k-val-") and not (got / ".lgtrack_index").exists()
  split = sources.scan("got10k", str(got), "val", cache_dir=str(cache_dir))
  assert split.cached == 1 and len(split.sequences) == 3  # the two others parsed and added
  assert sources.scan("got10k", str(got), "val", cache_dir=str(cache_dir)).cached == 3


def test_unusable_cache_files_are_ignored(got):
  sources.scan("got10k", str(got), "val")
  path = got / ".lgtrack_index" / "got10k-val.npz"
  path.write_bytes(b"not an npz file")
  assert sources.scan("got10k", str(got), "val").cached == 0  # rewritten
  assert sources.scan("got10k", str(got), "val").cached == 3
  # A cache written for another root (a copied dataset) is not used for this one.
  records = index_cache.load(str(path), str(got), "got10k", "val")
  assert len(records) == 3
  assert index_cache.load(str(path), "/elsewhere", "got10k", "val") == {}


def test_read_only_root_uses_the_user_cache(tmp_path, got, monkeypatch):
  monkeypatch.setenv("LGTRACK_INDEX_CACHE", str(tmp_path / "user"))
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  path = index_cache.cache_path(str(got), "got10k", "val")
  assert path.startswith(str(tmp_path / "user"))


def test_lasot_cache_keeps_real_annotations(tmp_path):
  annos = Path(__file__).resolve().parents[1] / "data" / "lasot_test_annos"
  seq = tmp_path / "tiger" / "tiger-6"
  seq.mkdir(parents=True)
  gt = (annos / "groundtruth" / "tiger-6.txt").read_text()
  n = len(gt.split())
  (seq / "groundtruth.txt").write_text(gt)
  (seq / "nlp.txt").write_text((annos / "nlp" / "tiger-6.txt").read_text())
  (seq / "full_occlusion.txt").write_text(",".join((annos / "absent" / "tiger-6.txt")
                                                   .read_text().split()))
  (seq / "out_of_view.txt").write_text(",".join(["0"] * n))
  layouts.write_frames(seq / "img", [f"{k:08d}.jpg" for k in range(1, n + 1)], real=False)
  layouts.age(tmp_path)
  first = sources.scan("lasot", str(tmp_path), "test")
  second = sources.scan("lasot", str(tmp_path), "test")
  assert second.cached == 1 and second.partial and second.found == 1
  _same(first.sequences[0], second.sequences[0])
  np.testing.assert_array_equal(second.sequences[0].gt[117], [613, 731, 247, -11])
