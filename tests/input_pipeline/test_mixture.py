"""The training mixture: config parsing, ratios, purity of sample i, grounding, bad frames.

Three sources in their own layouts (LaSOT, TNL2K, GOT-10k) with tiny decodable frames; the ratio
and purity checks run on the pure choice function (`pipeline.sample_choices`), the rest through
the real tf.data pipeline with small batches.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from configs import tiny
from input_pipeline import mixture, sampler
from input_pipeline.sources.base import DataError, Sequence
from tests.input_pipeline import layouts

tf = pytest.importorskip("tensorflow")
from input_pipeline import pipeline  # noqa: E402  pylint: disable=wrong-import-position

MAX_LEN = 8
RATIOS = (0.5, 0.3, 0.2)


def tokenize(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
  ids = np.zeros((len(sentences), MAX_LEN), np.int32)
  mask = np.zeros((len(sentences), MAX_LEN), np.int32)
  for r, s in enumerate(sentences):
    toks = [101] + [len(w) for w in s.split()][:MAX_LEN - 2] + [102]
    ids[r, :len(toks)] = toks
    mask[r, :len(toks)] = 1
  return ids, mask


def config(train=(), **data):
  c = tiny.get_config()
  c.unlock()
  c.model.text.max_len = MAX_LEN
  c.data.train = tuple(train)
  c.data.template_size, c.data.search_size = 32, 64
  c.data.max_gap = 4
  for k, v in data.items():
    setattr(c.data, k, v)
  c.lock()
  return c


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
  base = tmp_path_factory.mktemp("mix")
  lasot_root, tnl2k_root, got_root = base / "lasot", base / "tnl2k", base / "got10k"
  for k in (1, 2, 3):
    layouts.write_lasot(lasot_root, f"cat-{k}", n=8, sentence=f"the cat number {k}")
  (lasot_root / "training_set.txt").write_text("cat-1\ncat-2\ncat-3\n")
  for k in (1, 2):
    layouts.write_tnl2k(tnl2k_root / "train", f"seq_{k}", n=6, sentence="a small white square")
  names = [f"GOT-10k_Train_{k:06d}" for k in (1, 2)]
  for name in names:
    layouts.write_got10k(got_root / "train", name, n=6, real=True)
  layouts.write_got10k_list(got_root / "train", names)
  return {"lasot": lasot_root, "tnl2k": tnl2k_root, "got10k": got_root}


@pytest.fixture(scope="module")
def mix_config(roots):
  return config(train=[(name, str(roots[name]), r, "train")
                       for name, r in zip(("lasot", "tnl2k", "got10k"), RATIOS, strict=True)],
                index_cache=False)


@pytest.fixture(scope="module")
def index(mix_config) -> sampler.Index:
  return mixture.build_index(mix_config, tokenize)


def test_train_sources_parsing(tmp_path):
  c = config(name="tnl2k", root="/data/tnl2k", split="test")
  assert mixture.train_sources(c.data) == [mixture.SourceSpec("tnl2k", "/data/tnl2k", 1.0,
                                                              "test")]
  # A relative single-source root stays relative to the working directory (`make demo` passes
  # runs/demo/data): it was once joined to itself, runs/demo/data/runs/demo/data.
  c = config(name="synthetic", root="runs/demo/data", split="train")
  assert mixture.train_sources(c.data) == [mixture.SourceSpec("synthetic", "runs/demo/data", 1.0,
                                                              "train")]
  c = config(train=[("lasot", "", 2, "train"), ("got10k", "GOT-10k", 0, "val"),
                    ("tnl2k", "/abs/tnl2k", 1.5, "train")], root="/data")
  assert mixture.train_sources(c.data) == [
      mixture.SourceSpec("lasot", "/data", 2.0, "train"),
      mixture.SourceSpec("got10k", "/data/GOT-10k", 0.0, "val"),
      mixture.SourceSpec("tnl2k", "/abs/tnl2k", 1.5, "train")]
  for bad, match in [([("vot", "/r", 1, "train")], "unknown dataset"),
                     ([("lasot", "/r", -1, "train")], ">= 0"),
                     ([("lasot", "/r", "a lot", "train")], "not a number"),
                     ([("lasot", "/r", 1)], "expected \\(name, root, ratio, split\\)"),
                     ([("lasot", "/r", 0, "train")], "every ratio is 0")]:
    with pytest.raises(ValueError, match=match):
      mixture.train_sources(config(train=bad).data)


def test_index_holds_the_three_sources(index):
  assert index.source_names == ("lasot", "tnl2k", "got10k")
  np.testing.assert_allclose(index.source_probs, RATIOS)
  np.testing.assert_array_equal(index.source_seq_count, [3, 2, 2])
  np.testing.assert_array_equal(index.source_seq_start, [0, 3, 5])
  assert index.dataset_of(4) == "tnl2k" and index.dataset_of(6) == "got10k"
  np.testing.assert_array_equal(index.has_sentence, [1, 1, 1, 1, 1, 0, 0])
  assert index.locate(int(index.seq_start[5]) + 2) == (5, 2)


def test_ratios_over_10k_samples(index, mix_config):
  n = 10_000
  c = pipeline.sample_choices(index, mix_config, 0, np.arange(n))
  freq = np.bincount(c["source"], minlength=3) / n
  p = np.asarray(RATIOS)
  assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n)), freq
  # Each sample's sequence and frames belong to its source; GOT-10k (no language) is mode 0.
  np.testing.assert_array_equal([index.source_of(s) for s in c["seq"]], c["source"])
  for key in ("template", "search"):
    s = c["seq"]
    assert ((c[key] >= index.seq_start[s]) & (c[key] < index.seq_start[s] + index.seq_len[s])
            ).all()
    assert index.visible[c[key]].all()
  assert (c["mode"][c["source"] == 2] == 0).all() and (c["mode"][c["source"] < 2] > 0).any()
  # Every sequence of every source is drawn.
  assert set(c["seq"].tolist()) == set(range(index.num_sequences))


def test_sample_i_is_pure(index, mix_config):
  idx = np.arange(0, 600)
  whole = pipeline.sample_choices(index, mix_config, 3, idx)
  perm = np.random.default_rng(0).permutation(idx)
  shuffled = pipeline.sample_choices(index, mix_config, 3, perm)
  rebuilt = mixture.build_index(mix_config, tokenize)  # another run
  again = pipeline.sample_choices(rebuilt, mix_config, 3, idx[400:])  # a restart at 400
  for k in whole:
    np.testing.assert_array_equal(shuffled[k], whole[k][perm])
    np.testing.assert_array_equal(again[k], whole[k][400:])
  other_seed = pipeline.sample_choices(index, mix_config, 4, idx)
  assert not np.array_equal(other_seed["seq"], whole["seq"])


def test_stream_identical_across_hosts_and_restart(index, mix_config):
  run = pipeline.batches(index, mix_config, seed=1, start_step=0, global_batch=8)
  steps = [next(run) for _ in range(3)]
  resumed = next(pipeline.batches(index, mix_config, seed=1, start_step=2, global_batch=8))
  hosts = [next(pipeline.batches(index, mix_config, seed=1, start_step=2, global_batch=8,
                                 process_index=h, process_count=2)) for h in range(2)]
  for k in steps[2]:
    np.testing.assert_array_equal(resumed[k], steps[2][k], err_msg=k)
  row = {int(i): r for r, i in enumerate(steps[2]["index"])}
  for h in hosts:
    for r, i in enumerate(h["index"]):
      for k in h:
        assert h[k][r].tobytes() == steps[2][k][row[int(i)]].tobytes(), (k, int(i))


def _grounding_sequences(root: Path) -> list[Sequence]:
  """Single annotated images, as the RefCOCOg reader returns them."""
  layouts.write_frames(root, ["7.jpg", "9.jpg"])
  gts = {"7_1_1": (7, [4.0, 6.0, 12.0, 8.0]), "7_2_2": (7, [20.0, 2.0, 10.0, 20.0]),
         "9_1_3": (9, [0.0, 0.0, 16.0, 24.0])}
  return [Sequence(dataset="refcocog", name=n, frames=(str(root / f"{i}.jpg"),),
                   gt=np.array([b]), absent=np.zeros(1, bool), sentence=f"object {n}",
                   coord_base=0) for n, (i, b) in gts.items()]


def test_grounding_source_is_language_only(tmp_path, roots):
  cfg = config(mode_probs=(1.0, 0.0, 0.0), brightness_jitter=0.0, index_cache=False)
  video = sampler.build_index(mixture.sources.load("lasot", str(roots["lasot"]), "train",
                                                   cache=False), tokenize, MAX_LEN)
  grounding = _grounding_sequences(tmp_path)
  images = sampler.build_index(grounding, tokenize, MAX_LEN, grounding=True)
  assert images.num_sequences == 3  # one visible frame is enough for an image
  index = sampler.merge([(video, 1.0), (images, 1.0)])
  c = pipeline.sample_choices(index, cfg, 0, np.arange(400))
  ground = c["source"] == 1
  assert ground.any() and (~ground).any()
  assert (c["mode"][ground] == 1).all() and (c["mode"][~ground] == 0).all()  # probs say box
  np.testing.assert_array_equal(c["template"][ground], c["search"][ground])
  batch = next(pipeline.batches(index, cfg, seed=0, start_step=0, global_batch=16))
  for r in np.flatnonzero(batch["mode"] == 1):
    s = index.seq_names[int(c["seq"][r])]
    x, y, w, h = next(q for q in grounding if q.name == s).gt[0]
    np.testing.assert_allclose(batch["search_box"][r], [(x + w / 2) / layouts.W,
                                                        (y + h / 2) / layouts.H,
                                                        w / layouts.W, h / layouts.H], atol=1e-6)
    assert not batch["template"][r].any()
  mute = dataclasses.replace(_grounding_sequences(tmp_path / "mute")[0], sentence=None)
  with pytest.raises(DataError, match="needs a sentence"):
    sampler.build_index([mute], tokenize, MAX_LEN, grounding=True)


def test_bad_frame_error_or_skip(tmp_path, caplog):
  # A private copy of the mixture: one of its frames is corrupted.
  layouts_root = tmp_path / "lasot"
  for k in (1, 2):
    layouts.write_lasot(layouts_root, f"dog-{k}", n=8, sentence="a dog")
  (layouts_root / "training_set.txt").write_text("dog-1\ndog-2\n")
  layouts.write_tnl2k(tmp_path / "tnl2k" / "train", "s_1", n=6)
  train = [("lasot", str(layouts_root), 1.0, "train"),
           ("tnl2k", str(tmp_path / "tnl2k"), 1.0, "train")]
  cfg = config(train=train, index_cache=False)
  index = mixture.build_index(cfg, tokenize)
  c = pipeline.sample_choices(index, cfg, 1, np.arange(8))
  flat = int(c["search"][5])  # decoded by step 0 whatever the mode
  path = str(index.frame_paths[flat])
  with open(path, "wb") as f:
    f.write(b"not a JPEG" * 10)
  s, frame = index.locate(flat)
  with pytest.raises(DataError) as e:
    next(pipeline.batches(index, cfg, seed=1, start_step=0, global_batch=8))
  msg = str(e.value)
  assert path in msg and f"frame={frame}" in msg and f"dataset={index.dataset_of(s)}" in msg

  skip = config(train=train, index_cache=False, on_bad_image="skip")
  stats = {}
  with caplog.at_level(logging.WARNING):
    it = pipeline.batches(index, skip, seed=1, start_step=0, global_batch=8, stats=stats)
    first, second = next(it), next(it)
  # The samples reading the bad frame are dropped and the batches fill up with the next ones.
  c = pipeline.sample_choices(index, cfg, 1, np.arange(32))
  reads_bad = (c["search"] == flat) | ((c["template"] == flat) & (c["mode"] != 1))
  good = np.flatnonzero(~reads_bad)
  assert reads_bad[5] and len(good) >= 16
  np.testing.assert_array_equal(np.concatenate([first["index"], second["index"]]), good[:16])
  assert stats["skipped"] == int(reads_bad[:good[15]].sum())
  assert any(path in r.getMessage() for r in caplog.records), [r.getMessage()
                                                               for r in caplog.records]
