"""One-stream ViT pieces: patch embedding, position embeddings, pre-norm transformer blocks.

Param names follow timm/OSTrack (`patch_embed`, `pos_embed_z`, `pos_embed_x`, `blocks_{i}`,
`norm`) so that the weight converters map pretrained ViTs onto them with a plain key table.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lgtrack_jax.models import layers


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
    x = layers.Dense(self.hidden, self.dtype, name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    return layers.Dense(d, self.dtype, name="fc2")(x)


def template_attention(q: jnp.ndarray, k: jnp.ndarray, num_template: int,
                       template_mask: jnp.ndarray) -> jnp.ndarray:
  """How much the target's template tokens attend to each search token (OSTrack's ranking).

  q, k [B, N, H, Dh] (template tokens first); template_mask [B, Nz] bool, the template tokens
  inside the target box. Softmax over all N keys, as in the block's own attention; the weights on
  the search keys are averaged over the masked template queries and the heads.
  Returns [B, N - Nz] float32.
  """
  qz = q[:, :num_template].astype(jnp.float32) / np.sqrt(q.shape[-1])
  probs = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", qz, k.astype(jnp.float32)), axis=-1)
  w = template_mask.astype(jnp.float32)
  w = w / jnp.maximum(w.sum(-1, keepdims=True), 1.0)
  return jnp.einsum("bhqk,bq->bk", probs[..., num_template:], w) / q.shape[2]


class Block(nn.Module):
  """Pre-norm transformer block: x [B, N, D] -> [B, N, D].

  With `keep_search` > 0 it is also a candidate-elimination block (OSTrack): after the attention,
  only the `keep_search` search tokens (x[:, num_template:]) that the target's template tokens
  attend to most go on to the MLP and the later blocks; the others are background and dropped.
  Then call it with template_mask [B, Nz] bool; it returns (x [B, Nz + keep_search, D],
  kept [B, keep_search] int32: positions of the kept tokens among the search tokens it was given).
  """

  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32
  attention: str = "flax"  # see `layers.attention_fn`
  num_template: int = 0
  keep_search: int = 0

  @nn.compact
  def __call__(self, x: jnp.ndarray, template_mask: jnp.ndarray | None = None):
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm1")(x)
    a, q, k = layers.SelfAttention(self.num_heads, self.dtype, self.attention, name="attn")(y)
    x = x + a
    kept = None
    if self.keep_search:
      score = template_attention(q, k, self.num_template, template_mask)
      _, kept = jax.lax.top_k(score, self.keep_search)
      search = jnp.take_along_axis(x[:, self.num_template:], kept[..., None], axis=1)
      x = jnp.concatenate([x[:, :self.num_template], search], axis=1)
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm2")(x)
    x = x + Mlp(int(x.shape[-1] * self.mlp_ratio), dtype=self.dtype, name="mlp")(y)
    return x if kept is None else (x, kept.astype(jnp.int32))


class PatchEmbed(nn.Module):
  """Non-overlapping patches: images [B, H, W, 3] -> tokens [B, H/p * W/p, D], grid (H/p, W/p)."""

  patch_size: int
  hidden_size: int
  dtype: Any = jnp.float32
  conv: str = "xla"  # model.conv

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> tuple[jnp.ndarray, tuple[int, int]]:
    p = self.patch_size
    x = layers.Conv(self.hidden_size, (p, p), self.dtype, "proj", self.conv,
                    strides=(p, p), padding="VALID")(images)
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
