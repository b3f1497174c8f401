"""RefCOCOg through the TFDS `ref_coco/refcocog_umd` builder, mocked with known examples.

The mock serialises the examples with the builder's real feature spec and parses them back
(`deserialize_example`), exactly as TFDS reads its prepared files, so the reader sees the real
structure: encoded JPEG bytes, ragged expressions, float32 (ymin, xmin, ymax, xmax) boxes.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from input_pipeline import sources
from input_pipeline.sources import refcocog

IMAGE_W, IMAGE_H = 64, 48


def test_normalised_to_xywh():
  # COCO box x=8, y=12, w=30, h=20 in a 64x48 image, as the TFDS builder normalises it.
  bbox = np.array([12 / 48, 8 / 64, 32 / 48, 38 / 64], np.float32)
  np.testing.assert_allclose(refcocog.normalised_to_xywh(bbox, 64, 48), [8, 12, 30, 20],
                             atol=1e-4)
  # Not (xmin, ymin, ...) and not width/height swapped: a non-square box in a non-square image.
  many = np.array([[0.0, 0.0, 1.0, 0.5], [0.5, 0.25, 1.0, 1.0]])
  np.testing.assert_allclose(refcocog.normalised_to_xywh(many, 200, 100),
                             [[0, 0, 100, 100], [50, 50, 150, 50]])


def _jpeg(colour) -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", (IMAGE_W, IMAGE_H), colour).save(buf, format="JPEG")
  return buf.getvalue()


@pytest.fixture(scope="module")
def tfds_mock():
  """A context manager factory: TFDS mocked to serve two known images with three objects."""
  tf = pytest.importorskip("tensorflow")
  tfds = pytest.importorskip("tensorflow_datasets")
  images = {7: _jpeg((10, 200, 30)), 9: _jpeg((200, 10, 30))}

  def obj(oid, box, refexps):
    x, y, w, h = box
    return {"id": oid, "area": int(w * h), "label": 1, "gt_box_index": 0,
            "bbox": tfds.features.BBox(ymin=y / IMAGE_H, xmin=x / IMAGE_W,
                                       ymax=(y + h) / IMAGE_H, xmax=(x + w) / IMAGE_W),
            "mask": np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8),
            "refexp": [{"refexp_id": r, "raw": t} for r, t in refexps]}

  def examples():  # fresh file objects each time: encoding reads them
    return [
        {"image": io.BytesIO(images[7]), "image/id": 7, "coco_annotations": [],
         "objects": [obj(11, (8, 12, 30, 20), [(101, "the green  thing\n"), (102, "left one")]),
                     obj(12, (0, 0, 32, 48), [(103, "the big one")])]},
        {"image": io.BytesIO(images[9]), "image/id": 9, "coco_annotations": [],
         "objects": [obj(31, (40.5, 6.25, 20, 30), [(301, "a red patch")])]},
    ]

  calls = []

  def as_dataset(self, split, decoders=None, **kwargs):
    del kwargs
    calls.append(split)
    features = self.info.features
    serialized = [features.serialize_example(e) for e in examples()]
    return tf.data.Dataset.from_tensor_slices(serialized).map(
        lambda s: features.deserialize_example(s, decoders=decoders))

  def mock():
    return tfds.testing.mock_data(as_dataset_fn=as_dataset)

  mock.images = images
  mock.calls = calls
  return mock


def test_scan_converts_boxes_sentences_and_images(tmp_path, tfds_mock):
  root = tmp_path / "refcoco"
  root.mkdir()
  with tfds_mock():
    split = sources.scan("refcocog", str(root), "train")
  assert tfds_mock.calls[-1] == "train"
  seqs = {s.name: s for s in split.sequences}
  assert list(seqs) == ["7_11_101", "7_11_102", "7_12_103", "9_31_301"]
  np.testing.assert_allclose(seqs["7_11_101"].gt, [[8, 12, 30, 20]], atol=1e-3)
  np.testing.assert_allclose(seqs["7_12_103"].gt, [[0, 0, 32, 48]], atol=1e-3)
  np.testing.assert_allclose(seqs["9_31_301"].gt, [[40.5, 6.25, 20, 30]], atol=1e-3)
  s = seqs["7_11_101"]
  assert s.sentence == "the green thing" and s.coord_base == 0 and len(s) == 1
  assert not s.absent.any() and s.dataset == "refcocog"
  assert s.meta["image_id"] == "7" and s.meta["width"] == str(IMAGE_W)
  assert seqs["7_11_102"].frames == s.frames  # one image file per COCO image
  with open(s.frames[0], "rb") as f:
    assert f.read() == tfds_mock.images[7]  # the stored bytes, not a re-encode
  np.testing.assert_allclose(s.boxes, s.gt)  # 0-based pixels already

  # Later starts come from the index cache: no TFDS call, no TensorFlow needed.
  n_calls = len(tfds_mock.calls)
  again = sources.scan("refcocog", str(root), "train")
  assert again.cached == 4 and len(tfds_mock.calls) == n_calls
  for a, b in zip(split.sequences, again.sequences, strict=True):
    assert (a.name, a.frames, a.sentence) == (b.name, b.frames, b.sentence)
    np.testing.assert_array_equal(a.gt, b.gt)
  picked = sources.load("refcocog", str(root), "train", sequences=["9_31_301"])
  assert [p.name for p in picked] == ["9_31_301"]


def test_coco_images_in_the_manual_dir_are_used(tmp_path, tfds_mock):
  root = tmp_path / "refcoco"
  coco = root / "coco_train2014"
  coco.mkdir(parents=True)
  (coco / "COCO_train2014_000000000007.jpg").write_bytes(tfds_mock.images[7])
  with tfds_mock():
    seqs = sources.load("refcocog", str(root), "val", cache=False)
  assert tfds_mock.calls[-1] == "validation"
  assert seqs[0].frames[0] == str(coco / "COCO_train2014_000000000007.jpg")
  assert os.path.basename(seqs[-1].frames[0]) == "9.jpg"  # not in the manual dir: extracted
  with pytest.raises(ValueError, match="RefCOCOg split"):
    sources.load("refcocog", str(root), "testA")
