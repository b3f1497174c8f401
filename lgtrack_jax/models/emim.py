"""EMIM: the Enhanced Multimodal Interaction Module (DESIGN section 2).

Inserted before selected ViT blocks. Per call:
  1. language -> vision: vision tokens query the text tokens; gated residual
     v = v + tanh(alpha_ca) * CA(LN(v), T). alpha starts at 0, so a pretrained ViT's features are
     unchanged at initialisation and the model learns how much language to let in;
  2. vision -> language ("enhanced", bidirectional): T queries the vision tokens, residual + MLP,
     so the text stream is refined level by level;
  3. global modulation: v = v + tanh(alpha_gm) * v * W g_l, g_l the sentence vector.
Samples without text (mode 0) pass through unchanged: every language term is multiplied by
`has_text`, and text padding is masked in every attention. Both attentions pair the vision tokens
with a few text tokens, and fold their projections through the text side (`CrossAttention`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from lgtrack_jax.models import layers
from lgtrack_jax.models.cross_attention import CrossAttention
from lgtrack_jax.models.vit import Mlp


class EMIM(nn.Module):
  """v [B, N, D], t [B, L, D], t_mask [B, L] int, g_l [B, D], has_text [B] bool -> (v, t)."""

  num_heads: int
  mlp_ratio: float = 2.0
  bidirectional: bool = True
  global_modulation: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, v, t, t_mask, g_l, has_text):
    gate = has_text.astype(v.dtype)[:, None, None]
    attn_mask = (t_mask > 0)[:, None, None, :]  # [B, 1, 1, L]: query any vision token, key text
    ln = lambda name: nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name=name)

    alpha_ca = self.param("alpha_ca", nn.initializers.zeros, ())
    ca = CrossAttention(self.num_heads, self.dtype, name="lang_to_vision")(
        ln("norm_v")(v), t, attn_mask)
    v = v + jnp.tanh(alpha_ca) * ca * gate

    if self.bidirectional:
      tq = ln("norm_t")(t)
      t = t + CrossAttention(self.num_heads, self.dtype, name="vision_to_lang")(
          tq, ln("norm_v2")(v))
      t = t + Mlp(int(t.shape[-1] * self.mlp_ratio), dtype=self.dtype,
                  name="text_mlp")(ln("norm_t2")(t))

    if self.global_modulation:
      alpha_gm = self.param("alpha_gm", nn.initializers.zeros, ())
      mod = layers.Dense(v.shape[-1], self.dtype, name="modulation")(g_l)[:, None, :]
      v = v + jnp.tanh(alpha_gm) * v * mod * gate
    return v, t
