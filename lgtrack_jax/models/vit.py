"""One-stream ViT pieces: patch embedding, position embeddings, pre-norm transformer blocks.

Param names follow timm/OSTrack (`patch_embed`, `pos_embed_z`, `pos_embed_x`, `blocks_{i}`,
`norm`) so that the weight converters map pretrained ViTs onto them with a plain key table.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def resize_posemb(posemb: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
  """Bilinearly resamples a [gh, gw, D] position-embedding grid to [grid[0], grid[1], D]."""
  if posemb.shape[:2] == tuple(grid):
    return posemb
  return jax.image.resize(posemb, (*grid, posemb.shape[-1]), method="bilinear")


class Mlp(nn.Module):
  """Two-layer GELU MLP: [..., D] -> [..., out or D]."""

  hidden: int
  out: int | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    d = self.out or x.shape[-1]
    x = nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    return nn.Dense(d, dtype=self.dtype, name="fc2")(x)


ATTENTION_IMPLS = ("flax", "xla", "cudnn")


def attention_fn(impl: str):
  """The attention kernel of `nn.MultiHeadDotProductAttention` for `model.attention`.

  'flax': flax's einsum attention. 'xla' / 'cudnn': `jax.nn.dot_product_attention` with that
  implementation (cudnn: the fused flash-attention kernel on NVIDIA GPUs, bf16/fp16 only).
  q, k, v [B, N, H, Dh] -> [B, N, H, Dh]; same parameters whichever is chosen.
  """
  if impl not in ATTENTION_IMPLS:
    raise ValueError(f"model.attention={impl!r}: expected one of {ATTENTION_IMPLS}")
  if impl == "flax":
    return nn.dot_product_attention

  def attention(query, key, value, mask=None):
    return jax.nn.dot_product_attention(query, key, value, mask=mask, implementation=impl)

  return attention


class Block(nn.Module):
  """Pre-norm transformer block: x [B, N, D] -> [B, N, D]."""

  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32
  attention: str = "flax"  # see `attention_fn`

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm1")(x)
    x = x + nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, attention_fn=attention_fn(self.attention),
        name="attn")(y, y)
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm2")(x)
    return x + Mlp(int(x.shape[-1] * self.mlp_ratio), dtype=self.dtype, name="mlp")(y)


class PatchEmbed(nn.Module):
  """Non-overlapping patches: images [B, H, W, 3] -> tokens [B, H/p * W/p, D], grid (H/p, W/p)."""

  patch_size: int
  hidden_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> tuple[jnp.ndarray, tuple[int, int]]:
    p = self.patch_size
    x = nn.Conv(self.hidden_size, (p, p), strides=(p, p), padding="VALID",
                dtype=self.dtype, name="proj")(images)
    b, gh, gw, d = x.shape
    return x.reshape(b, gh * gw, d), (gh, gw)


class PosEmbed(nn.Module):
  """Learned [gh, gw, D] position embedding, resampled when the input grid differs."""

  grid: tuple[int, int]
  hidden_size: int

  @nn.compact
  def __call__(self, grid: tuple[int, int]) -> jnp.ndarray:
    pe = self.param("pos_embed", nn.initializers.normal(0.02), (*self.grid, self.hidden_size))
    return resize_posemb(pe, grid).reshape(grid[0] * grid[1], self.hidden_size)
