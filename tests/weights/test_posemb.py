"""Position-embedding grids: PyTorch-exact bicubic resampling and prefix-token splitting."""

from __future__ import annotations

import numpy as np
import pytest

from lgtrack_jax.weights import posemb
from tests.weights import reference

_GRID = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
# torch.nn.functional.interpolate(_GRID as [1, 1, 3, 3], size, mode='bicubic',
# align_corners=False), printed by torch 2.13.
_TORCH_3_TO_2 = np.array([[0.765625, 2.3828125], [5.6171875, 7.234375]])
_TORCH_3_TO_5 = np.array([
    [-0.38399985, 0.02800067, 0.71200025, 1.3960004, 1.8080006],
    [0.8520015, 1.2640017, 1.9480014, 2.6320012, 3.0440018],
    [2.9040003, 3.3160002, 4.0, 4.684, 5.0960007],
    [4.9560003, 5.368, 6.052, 6.7360005, 7.148001],
    [6.192002, 6.6040006, 7.288001, 7.9720025, 8.384002]])


def test_matches_values_printed_by_torch():
  np.testing.assert_allclose(posemb.resample_grid(_GRID, (2, 2))[..., 0], _TORCH_3_TO_2,
                             atol=1e-5)
  np.testing.assert_allclose(posemb.resample_grid(_GRID, (5, 5))[..., 0], _TORCH_3_TO_5,
                             atol=1e-5)


@pytest.mark.parametrize("size_in,size_out", [((14, 14), (8, 8)), ((14, 14), (16, 16)),
                                              ((4, 6), (7, 3)), ((1, 1), (3, 3))])
def test_matches_the_elementwise_reference(size_in, size_out):
  grid = np.random.default_rng(0).normal(size=(*size_in, 5)).astype(np.float32)
  ours = posemb.resample_grid(grid, size_out)
  assert ours.shape == (*size_out, 5) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, reference.bicubic(grid, size_out), atol=1e-5)


def test_same_size_is_a_copy_and_constants_stay_constant():
  grid = np.random.default_rng(1).normal(size=(4, 4, 3)).astype(np.float32)
  np.testing.assert_array_equal(posemb.resample_grid(grid, (4, 4)), grid)
  np.testing.assert_allclose(posemb.resample_grid(np.full((5, 5, 2), 3.0), (9, 2)), 3.0,
                             atol=1e-6)


def test_split_tokens():
  pe = np.arange(1 * 10 * 2, dtype=np.float32).reshape(1, 10, 2)  # cls + 3x3
  prefix, grid = posemb.split_tokens(pe, 1)
  assert prefix == 1 and grid.shape == (3, 3, 2)
  np.testing.assert_array_equal(grid[0, 0], pe[0, 1])
  prefix, grid = posemb.split_tokens(pe[:, 1:], 1)  # no_embed_class: no position for the cls
  assert prefix == 0 and grid.shape == (3, 3, 2)
  with pytest.raises(ValueError, match="not 1 prefix tokens plus a square"):
    posemb.split_tokens(pe[:, :7], 1)


@pytest.mark.parity
def test_parity_with_torch_interpolate():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(2)
  for size_in, size_out in (((14, 14), (8, 8)), ((14, 14), (16, 16)), ((14, 14), (24, 24)),
                            ((16, 16), (8, 8)), ((5, 3), (2, 9))):
    grid = rng.normal(size=(*size_in, 8)).astype(np.float32)
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(grid).permute(2, 0, 1)[None], size=size_out, mode="bicubic",
        align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(posemb.resample_grid(grid, size_out), theirs, atol=1e-5)
