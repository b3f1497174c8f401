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
  """Two-layer GELU MLP: [..., D] -> [..., out or D]; `hidden` units, or `ratio` * D when hidden
  is 0 (a module built before its input width is known)."""

  hidden: int = 0
  out: int | None = None
  dtype: Any = jnp.float32
  ratio: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    d = self.out or x.shape[-1]
    x = layers.Dense(self.hidden or int(x.shape[-1] * self.ratio), self.dtype, name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    return layers.Dense(d, self.dtype, name="fc2")(x)


def template_attention(q: jnp.ndarray, k: jnp.ndarray, num_template: int,
                       template_mask: jnp.ndarray) -> jnp.ndarray:
  """How much the target's template tokens attend to each search token (OSTrack's ranking).

  q [B, Nq, H, Dh] queries of template tokens; k [B, N, H, Dh] the keys of the Nz =
  `num_template` template tokens then the search tokens; template_mask [B, Nq] bool, the queries
  of the target (inside the box, or the centre token). Softmax over all N keys, as in the
  unmasked block's own attention; the weights on the search keys are averaged over the masked
  queries and the heads. Returns [B, N - Nz] float32.
  """
  qz = q.astype(jnp.float32) / np.sqrt(q.shape[-1])
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

  With `template_cache` (`model.template_cache`) the first `num_template` tokens attend only to
  each other, the search tokens to all: the template's keys and values then never depend on the
  search crop. `template` and `search` compute the two halves of the same block apart (a
  tracker's per-sequence and per-frame work); `__call__` computes both at once.
  """

  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32
  attention: str = "flax"  # see `layers.attention_fn`
  num_template: int = 0
  keep_search: int = 0
  template_cache: bool = False

  def setup(self):
    self.norm1 = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)
    self.attn = layers.SelfAttention(self.num_heads, self.dtype, self.attention)
    self.norm2 = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)
    self.mlp = Mlp(ratio=self.mlp_ratio, dtype=self.dtype)

  def __call__(self, x: jnp.ndarray, template_mask: jnp.ndarray | None = None):
    nz = self.num_template
    a, q, k, _ = self.attn(self.norm1(x), isolate=nz if self.template_cache else 0)
    # OSTrack's ranking reads the template queries against all keys, whether or not the template
    # rows of the attention itself may see the search keys (see `search`).
    score = template_attention(q[:, :nz], k, nz, template_mask) if self.keep_search else None
    return self._eliminate_then_mlp(x + a, nz, score)

  def template(self, z: jnp.ndarray) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """The template tokens alone, as `__call__` computes them with `template_cache`: z [B, Nz, D]
    -> (z [B, Nz, D], {'q', 'k', 'v': [B, Nz, H, Dh]} their queries, keys and values)."""
    a, q, k, v = self.attn(self.norm1(z))
    z = z + a
    return z + self.mlp(self.norm2(z)), {"q": q, "k": k, "v": v}

  def search(self, x: jnp.ndarray, cache: dict[str, jnp.ndarray],
             template_mask: jnp.ndarray | None = None):
    """The search tokens, as `__call__` computes them with `template_cache`, over the template's
    keys and values computed apart (`template`): x [B, Nx, D], cache {'k', 'v' [B, Nz, H, Dh],
    and for candidate elimination 'q' [B, Nq, H, Dh] the target's template queries, template_mask
    [B, Nq] bool their weights} -> x [B, Nx, D], or with `keep_search` (x [B, keep_search, D],
    kept [B, keep_search] int32).

    Candidate elimination ranks the search tokens by the target's template queries against the
    keys [template; search], softmax over all of them (`template_attention`, OSTrack's score),
    although the template rows of the attention itself see only the template keys: the ranking
    is then the one OSTrack computes, at the cost of one product of Nq cached query rows with the
    keys per elimination block."""
    a, _, k, _ = self.attn(self.norm1(x), prefix=cache)
    score = None
    if self.keep_search:
      nz = cache["k"].shape[1]
      keys = jnp.concatenate([cache["k"].astype(k.dtype), k], axis=1)
      score = template_attention(cache["q"], keys, nz, template_mask)
    return self._eliminate_then_mlp(x + a, 0, score)

  def _eliminate_then_mlp(self, x: jnp.ndarray, lead: int, score: jnp.ndarray | None):
    """x [B, lead + Ns, D] after the attention: with `keep_search`, only the search tokens
    x[:, lead:] of the `keep_search` highest scores [B, Ns] go on; then the MLP."""
    kept = None
    if self.keep_search:
      _, kept = jax.lax.top_k(score, self.keep_search)
      search = jnp.take_along_axis(x[:, lead:], kept[..., None], axis=1)
      x = jnp.concatenate([x[:, :lead], search], axis=1) if lead else search
    x = x + self.mlp(self.norm2(x))
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
