"""Cropping a JPEG by decoding only its window equals cropping the fully decoded frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from configs import tiny
from input_pipeline import sampler
from input_pipeline.sources.base import Sequence
from lgtrack_jax.ops import crop as crop_ops

tf = pytest.importorskip("tensorflow")
from input_pipeline import pipeline  # noqa: E402  pylint: disable=wrong-import-position

W, H = 160, 120


@pytest.mark.parametrize("fmt, subsampling", [("JPEG", 2), ("JPEG", 0), ("PNG", None)])
def test_window_crop_equals_full_decode(tmp_path, fmt, subsampling):
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:H, :W]
  img = np.stack([128 + 100 * np.sin(xx / 3.0 + c) * np.cos(yy / 5.0) for c in range(3)], -1)
  img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
  paths = []
  for k in range(2):
    path = tmp_path / f"{k + 1:08d}.{fmt.lower()[:3]}"
    kwargs = {"quality": 90, "subsampling": subsampling} if fmt == "JPEG" else {}
    Image.fromarray(img).save(path, format=fmt, **kwargs)
    paths.append(str(path))
  with Image.open(paths[0]) as im:
    full = np.asarray(im.convert("RGB"))  # what the tracker decodes at test time
  seq = Sequence(dataset="toy", name="t-1", frames=tuple(paths),
                 gt=np.array([[10.0, 10, 20, 20]] * 2), absent=np.zeros(2, bool), sentence=None,
                 coord_base=0)
  index = sampler.build_index([seq], lambda s: (np.zeros((len(s), 4), np.int32),) * 2, 4)
  sample = pipeline._Sampler(index, tiny.get_config(), 0)  # pylint: disable=protected-access
  regions = [(-30.0, -20.0, 70.0), (5.3, 7.7, 33.0), (150.0, 100.0, 40.0), (-5.0, 30.0, 300.0),
             (31.0, 47.0, 3.5), (200.0, 10.0, 20.0)]  # the last one lies outside the frame
  for x0, y0, side in regions:
    for out, flip in ((16, False), (37, True)):
      crop, top_left, width, height = sample._read_crop(  # pylint: disable=protected-access
          tf.constant(0, tf.int64), lambda hw: (tf.constant([x0, y0], tf.float32),
                                                tf.constant(side), tf.constant(side)),
          out, tf.constant(flip))
      want = crop_ops.bilinear_crop_reference(full, x0, y0, side, side, out, out)
      if flip:
        want = want[:, ::-1]
      np.testing.assert_allclose(crop.numpy(), want, atol=2e-3, err_msg=str((x0, y0, side)))
      np.testing.assert_allclose(top_left.numpy(), [x0, y0])
      assert float(width) == float(height) == side
