"""CenterHead: the window mode (size/offset only at selected cells) against the full maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import head as head_lib


@pytest.mark.parametrize("conv,taper", [("xla", False), ("matmul", False), ("xla", True)])
@pytest.mark.parametrize("grid,num_convs", [((16, 16), 4), ((5, 7), 2), ((3, 3), 4)])
def test_size_and_offset_at_selected_cells_match_the_full_maps(conv, taper, grid, num_convs):
  """Corners, edges and the inside, and windows wider than the map: the zero padding of every
  layer must be reproduced, not just the first one's. (In float64 the two agree exactly; float32
  differs by rounding, about 1e-5 here, where a missed padding cell moves a value by ~0.1.)"""
  h, w = grid
  cells = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1], [h // 2, w // 2],
                    [min(1, h - 1), w - 2]], np.int32)
  x = jax.random.normal(jax.random.key(0), (len(cells), h, w, 12))
  head = head_lib.CenterHead(channels=8, num_convs=num_convs, conv=conv, taper=taper)
  params = head.init(jax.random.key(1), x)["params"]
  # Non-zero biases everywhere, so that a cell outside the map that was not zeroed would show.
  params = jax.tree.map(lambda p: p + 0.3, params)
  score, size, offset = jax.jit(head.apply)({"params": params}, x)
  score_w, size_w, offset_w, cells_w = jax.jit(head.apply, static_argnums=2)(
      {"params": params}, x, lambda s: jnp.asarray(cells))
  rows, cols = cells[:, 0], cells[:, 1]
  batch = np.arange(len(cells))
  np.testing.assert_array_equal(score_w, score)
  np.testing.assert_array_equal(cells_w, cells)
  np.testing.assert_allclose(size_w, size[batch, rows, cols], atol=2e-4)
  np.testing.assert_allclose(offset_w, offset[batch, rows, cols], atol=2e-4)
  np.testing.assert_allclose(head_lib.box_at_cells(size_w, offset_w, cells_w, grid),
                             head_lib.boxes_at(size, offset, cells), atol=2e-4)


def test_selection_sees_the_score_logits():
  """select_cells gets the score map and its cells are where the boxes are read."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  head = head_lib.CenterHead(channels=8, num_convs=2)
  params = head.init(jax.random.key(1), x)["params"]
  score, size, offset = head.apply({"params": params}, x)
  score_w, size_w, offset_w, cells = head.apply({"params": params}, x, head_lib.argmax_cells)
  np.testing.assert_array_equal(cells, head_lib.argmax_cells(score))
  np.testing.assert_allclose(head_lib.box_at_cells(size_w, offset_w, cells, (6, 6)),
                             head_lib.decode_boxes(score, size, offset), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("taper,expected", [(True, (16, 8, 4)), (False, (16, 16, 16))])
def test_taper_halves_the_channels_layer_by_layer(taper, expected):
  """`model.head.taper`: OSTrack's C, C/2, C/4 ... in every branch, windows included."""
  x = jax.random.normal(jax.random.key(0), (1, 6, 6, 5))
  head = head_lib.CenterHead(channels=16, num_convs=3, taper=taper)
  assert head.layer_channels() == expected
  params = head.init(jax.random.key(1), x)["params"]
  for branch in ("score", "size", "offset"):
    ins = (5,) + expected[:-1]
    for i, (c_in, c_out) in enumerate(zip(ins, expected)):
      assert params[f"{branch}_conv{i}"]["kernel"].shape == (3, 3, c_in, c_out)
    assert params[f"{branch}_out"]["kernel"].shape[2] == expected[-1]
  head.apply({"params": params}, x, head_lib.argmax_cells)  # the window branches run too
  with pytest.raises(ValueError, match="divisible by 2\\^\\(num_convs - 1\\) = 4"):
    head_lib.CenterHead(channels=6, num_convs=3, taper=True).layer_channels()
