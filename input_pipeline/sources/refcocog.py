"""RefCOCOg (umd partition) for grounding: one image, one box and one sentence per "sequence".

Read through the TensorFlow Datasets builder `ref_coco/refcocog_umd`, whose manual download
directory is the dataset root (TFDS's instructions: `refcoco.json` next to `coco_train2014/`;
preparing it needs `pycocotools`). The prepared TFDS data lives in `<root>/tfds` unless
`data_dir` says otherwise. TFDS stores boxes normalised as (ymin, xmin, ymax, xmax) of the image
height / width; `normalised_to_xywh` turns them back into COCO's 0-based pixel x, y, w, h.

The first scan of a split converts it once: every referring expression becomes a one-frame
`Sequence` named `<image id>_<object id>_<expression id>` whose frame is the COCO image
(`<root>/coco_train2014/COCO_train2014_<id:012>.jpg` when present, else the image bytes TFDS
stored, written once next to the index cache). The result goes to the index cache keyed on the
prepared TFDS files, so later starts need neither TensorFlow nor TFDS. TensorFlow is imported
only here, and only for that conversion.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator

import numpy as np
from absl import logging
from PIL import Image

from input_pipeline.sources import index_cache
from input_pipeline.sources.base import Sequence, data_error, freeze

BUILDER = "ref_coco/refcocog_umd"
SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
COCO_IMAGE = os.path.join("coco_train2014", "COCO_train2014_%012d.jpg")


def normalised_to_xywh(bbox_yxyx: np.ndarray, width: float, height: float) -> np.ndarray:
  """TFDS `BBoxFeature` boxes -> pixel boxes.

  Args:
    bbox_yxyx: [..., 4] (ymin, xmin, ymax, xmax), each divided by the image height / width.
    width, height: the image size in pixels.

  Returns:
    [..., 4] float64 x, y, w, h in 0-based continuous pixels (COCO's convention).
  """
  b = np.asarray(bbox_yxyx, np.float64)
  ymin, xmin, ymax, xmax = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
  return np.stack([xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height],
                  axis=-1)


def _tfds_examples(root: str, split: str, data_dir: str) -> Iterator[dict]:
  """The TFDS examples of `split` as plain dicts (prepares the dataset on first use).

  Yields:
    {"image_id": int, "image": encoded bytes, "objects": [{"id": int, "bbox": [4] float32
    (ymin, xmin, ymax, xmax) normalised, "refexps": [(refexp id, sentence)]}]}.
  """
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  builder = tfds.builder(BUILDER, data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
  decoders = {"image": tfds.decode.SkipDecoding(), "objects": {"mask": tfds.decode.SkipDecoding()}}
  ds = builder.as_dataset(split=SPLITS[split], decoders=decoders, shuffle_files=False)
  for ex in ds:
    objects = ex["objects"]
    ids = objects["id"].numpy().tolist()
    boxes = objects["bbox"].numpy()
    refexp = objects["refexp"]
    raws, rids = _nested_list(refexp["raw"]), _nested_list(refexp["refexp_id"])
    yield {
        "image_id": int(ex["image/id"].numpy()),
        "image": ex["image"].numpy(),
        "objects": [{"id": int(ids[k]), "bbox": boxes[k],
                     "refexps": [(int(i), r.decode("utf-8") if isinstance(r, bytes) else str(r))
                                 for i, r in zip(rids[k], raws[k], strict=True)]}
                    for k in range(len(ids))],
    }


def _nested_list(t) -> list[list]:
  """A [objects, expressions] ragged (or dense) tensor -> nested Python lists."""
  return t.to_list() if hasattr(t, "to_list") else t.numpy().tolist()


def convert(examples: Iterable[dict], root: str, image_dir: str,
            dataset: str = "refcocog") -> list[Sequence]:
  """Examples (as `_tfds_examples` yields them) -> one-frame `Sequence`s, one per expression.

  Images are referenced in the COCO folder of `root` when there, else written to `image_dir`.
  A box of non-positive size or outside the image by more than a pixel is a DataError.
  """
  out = []
  for ex in examples:
    image_id = ex["image_id"]
    data = ex["image"]
    try:
      with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    except (OSError, SyntaxError, ValueError) as e:
      raise data_error(dataset, str(image_id), None, f"corrupt image in the TFDS data ({e})") \
          from None
    path = os.path.join(root, COCO_IMAGE % image_id)
    if not os.path.isfile(path):
      path = os.path.join(image_dir, f"{image_id}.jpg")
      if not os.path.isfile(path) or os.path.getsize(path) != len(data):
        os.makedirs(image_dir, exist_ok=True)
        with open(path + ".tmp", "wb") as f:
          f.write(data)
        os.replace(path + ".tmp", path)
    for obj in ex["objects"]:
      box = normalised_to_xywh(obj["bbox"], width, height)
      x, y, w, h = box
      if not (w > 0 and h > 0 and x >= -1 and y >= -1 and x + w <= width + 1
              and y + h <= height + 1):
        raise data_error(dataset, f"{image_id}_{obj['id']}", path,
                         f"box {box.round(2).tolist()} does not fit the {width}x{height} image")
      for refexp_id, sentence in obj["refexps"]:
        name = f"{image_id}_{obj['id']}_{refexp_id}"
        sentence = " ".join(sentence.split())
        if not sentence:
          raise data_error(dataset, name, None, "empty referring expression")
        out.append(freeze(Sequence(
            dataset=dataset, name=name, frames=(os.path.abspath(path),), gt=box[None].copy(),
            absent=np.zeros(1, bool), sentence=sentence, coord_base=0,
            meta={"image_id": str(image_id), "object_id": str(obj["id"]),
                  "refexp_id": str(refexp_id), "width": str(width), "height": str(height)})))
  return out


def _prepared_files(data_dir: str) -> list[str]:
  base = os.path.join(data_dir, *BUILDER.split("/"))
  files = []
  for d, _, names in os.walk(base):
    files.extend(os.path.join(d, n) for n in names)
  return sorted(files)


def scan(root: str, split: str, dataset: str = "refcocog",
         sequences: Iterable[str] | None = None, *, cache: bool = True,
         cache_dir: str | None = None, data_dir: str | None = None):
  """Reads a split (see the module docstring); returns a `sources.Split`."""
  from input_pipeline.sources import Split  # pylint: disable=import-outside-toplevel
  if split not in SPLITS:
    raise ValueError(f"RefCOCOg split must be one of {sorted(SPLITS)}, got {split!r}")
  if not os.path.isdir(root):
    raise data_error(dataset, None, root, "dataset root (the TFDS manual download dir) is not a "
                     "directory")
  data_dir = data_dir or os.path.join(root, "tfds")
  path = index_cache.cache_path(root, dataset, split, cache_dir)
  deps = _prepared_files(data_dir) + [os.path.join(root, "refcoco.json")]
  sig, newest = index_cache.signature(deps)
  records = index_cache.load(path, root, dataset, split) if cache else {}
  reused = bool(records) and all(s == sig for s, _ in records.values())
  if reused:
    seqs = [s for _, s in records.values()]
  else:
    logging.info("%s %s: converting the TFDS data (once)", dataset, split)
    image_dir = os.path.join(os.path.dirname(path), f"{dataset}-images")
    seqs = convert(_tfds_examples(root, split, data_dir), root, image_dir, dataset)
    if not seqs:
      raise data_error(dataset, None, data_dir, f"split {split!r} has no referring expression")
    sig, newest = index_cache.signature(_prepared_files(data_dir)
                                        + [os.path.join(root, "refcoco.json")])
    if cache and index_cache.is_settled(newest):
      index_cache.save(path, root, dataset, split, [(sig, s) for s in seqs])
  if sequences is not None:
    if isinstance(sequences, str):
      raise TypeError("sequences must be a collection of names, not a single string")
    wanted = set(sequences)
    unknown = sorted(wanted - {s.name for s in seqs})
    if unknown:
      raise data_error(dataset, None, root, f"requested sequences not in split {split!r}: "
                       f"{unknown[:10]}")
    chosen = [s for s in seqs if s.name in wanted]
  else:
    chosen = seqs
  return Split(dataset, root, split, chosen, found=len(seqs), cached=len(seqs) if reused else 0)
