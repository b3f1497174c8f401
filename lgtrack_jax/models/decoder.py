"""Joint Query decoder (DESIGN section 2): a query built from global vision AND language features.

q0 = MLP(concat[g_v, g_l]) + learned [Nq, Dd]. Each layer: self-attention over the queries (when Nq > 1),
cross-attention over the search tokens (and the text tokens when `attend_text`), MLP, with q0
re-added as the query position every layer ("guiding the decoding layers"). The search features
are then modulated by the output query: Fx' = Fx + Fx * q_out (JointNLT).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from lgtrack_jax.models import layers
from lgtrack_jax.models.cross_attention import CrossAttention
from lgtrack_jax.models.vit import Mlp


class DecoderLayer(nn.Module):
  """q [B, Nq, Dd], q_pos [B, Nq, Dd], memory [B, M, Dd], memory_mask [B, M] -> q."""

  num_heads: int
  dtype: Any = jnp.float32
  cross_attention_kernel: Callable | None = None  # `CrossAttention.kernel`

  @nn.compact
  def __call__(self, q, q_pos, memory, memory_mask):
    ln = lambda name: nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name=name)
    if q.shape[1] > 1:  # with one query, softmax over one key is 1: self-attention is moot
      y = ln("norm1")(q) + q_pos
      q = q + layers.Attention(self.num_heads, self.dtype, "self_attn")(y, y)
    y = ln("norm2")(q) + q_pos
    cross = CrossAttention(self.num_heads, self.dtype, self.cross_attention_kernel,
                           name="cross_attn")
    q = q + cross(y, memory, memory_mask[:, None, None, :] > 0)
    return q + Mlp(4 * q.shape[-1], dtype=self.dtype, name="mlp")(ln("norm3")(q))


class JointQueryDecoder(nn.Module):
  """Localises the target from the joint query.

  Inputs: g_v [B, D] global vision, g_l [B, D] global language (zeros when absent),
  search [B, Nx, D] search tokens, text [B, L, D], text_mask [B, L] (all 0 when no text),
  search_mask [B, Nx] (0: a token dropped by candidate elimination, not attended; default all 1).
  Returns: q_out [B, Nq, Dd], search features modulated by the query [B, Nx, Dd].
  """

  num_layers: int
  hidden_size: int
  num_heads: int
  num_queries: int = 1
  attend_text: bool = True
  dtype: Any = jnp.float32
  cross_attention_kernel: Callable | None = None  # `CrossAttention.kernel`

  @nn.compact
  def __call__(self, g_v, g_l, search, text, text_mask, search_mask=None):
    dd = self.hidden_size
    q0 = Mlp(dd, out=dd, dtype=self.dtype, name="joint_mlp")(
        jnp.concatenate([g_v, g_l], axis=-1))[:, None, :]
    q0 = q0 + self.param("query_embed", nn.initializers.normal(0.02), (self.num_queries, dd))
    fx = layers.Dense(dd, self.dtype, name="search_proj")(search)
    memory = fx
    memory_mask = (jnp.ones(fx.shape[:2], jnp.int32) if search_mask is None
                   else search_mask.astype(jnp.int32))
    if self.attend_text:
      memory = jnp.concatenate(
          [fx, layers.Dense(dd, self.dtype, name="text_proj")(text)], axis=1)
      memory_mask = jnp.concatenate([memory_mask, text_mask.astype(jnp.int32)], axis=1)
    q = q0
    for i in range(self.num_layers):
      q = DecoderLayer(self.num_heads, self.dtype, self.cross_attention_kernel,
                       name=f"layers_{i}")(
          q, q0, memory, memory_mask)
    q_out = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(q)
    fx_mod = fx + fx * q_out.mean(axis=1, keepdims=True)
    return q_out, fx_mod
