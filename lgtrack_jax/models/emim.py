"""EMIM: the Enhanced Multimodal Interaction Module (DESIGN section 2).

Inserted before selected ViT blocks. Per call:
  1. language -> vision: vision tokens query the text tokens; gated residual
     v = v + tanh(alpha_ca) * CA(LN(v), T). alpha starts at 0, so a pretrained ViT's features are
     unchanged at initialisation and the model learns how much language to let in;
  2. vision -> language ("enhanced", bidirectional): T queries the vision tokens, residual + MLP,
     so the text stream is refined level by level;
  3. global modulation: v = v + tanh(alpha_gm) * v * (W g_l + b), g_l the sentence vector.
Samples without text (mode 0) pass through unchanged: every language term is multiplied by
`has_text`, and text padding is masked in every attention. Both attentions pair the vision tokens
with a few text tokens; the tracker computes them with the folded kernels of tracking/kernels.py.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from lgtrack_jax.models import layers
from lgtrack_jax.models.cross_attention import CrossAttention
from lgtrack_jax.models.vit import Mlp


class EMIM(nn.Module):
  """v [B, N, D], t [B, L, D], t_mask [B, L] int, mod [B, D] (`modulation_vector(g_l)`; None
  without global modulation), has_text [B] bool -> (v, t). D = `width`.

  The modulation vector depends on the sentence alone, and so does the first EMIM's text input:
  a tracker computes the vector, and the first EMIM's `text_keys`, once per sequence
  (`LGTrack.condition`). With `model.template_cache` the text reads only the template tokens
  (`text_reads`), so every EMIM's text side is per sequence, and a frame runs only steps 1 and 3
  (`language_to_vision`, `modulate`: per vision token) on the search tokens.
  """

  num_heads: int
  width: int
  mlp_ratio: float = 2.0
  bidirectional: bool = True
  global_modulation: bool = True
  dtype: Any = jnp.float32
  cross_attention_kernel: Callable | None = None  # `CrossAttention.kernel`

  def setup(self):
    ln = lambda: nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)
    self.alpha_ca = self.param("alpha_ca", nn.initializers.zeros, ())
    self.norm_v = ln()
    self.lang_to_vision = CrossAttention(self.num_heads, self.dtype, self.cross_attention_kernel)
    if self.bidirectional:
      self.norm_t, self.norm_v2, self.norm_t2 = ln(), ln(), ln()
      self.vision_to_lang = CrossAttention(self.num_heads, self.dtype, self.cross_attention_kernel)
      self.text_mlp = Mlp(int(self.width * self.mlp_ratio), dtype=self.dtype)
    if self.global_modulation:
      self.alpha_gm = self.param("alpha_gm", nn.initializers.zeros, ())
      self.modulation = layers.Dense(self.width, self.dtype)

  def modulation_vector(self, g_l: jnp.ndarray) -> jnp.ndarray | None:
    """g_l [B, D] sentence vector -> W g_l + b [B, D] (None without global modulation)."""
    return self.modulation(g_l) if self.global_modulation else None

  def text_keys(self, t: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """The language-to-vision attention's key side for text tokens t [B, L, D] (see
    `CrossAttention`): what `__call__` computes from t before the vision tokens come in."""
    return self.lang_to_vision(None, t)

  def __call__(self, v, t, t_mask, mod, has_text, keys=None, text_reads: int | None = None):
    """`keys`: `text_keys(t)`, computed earlier (the first EMIM's t is the sentence's).
    `text_reads`: the text refines itself from the first `text_reads` vision tokens only (the
    template's, with `model.template_cache`: the text then never depends on the search crop);
    None: from all of them."""
    v = self.language_to_vision(v, t, t_mask, has_text, keys)
    if self.bidirectional:
      t = self.vision_to_language(t, v if text_reads is None else v[:, :text_reads])
    return self.modulate(v, mod, has_text), t

  def language_to_vision(self, v, t, t_mask, has_text, keys=None):
    """Step 1, per vision token: v [B, N, D] -> [B, N, D]; t [B, L, D] or None with `keys`."""
    gate = has_text.astype(v.dtype)[:, None, None]
    attn_mask = (t_mask > 0)[:, None, None, :]  # [B, 1, 1, L]: query any vision token, key text
    ca = self.lang_to_vision(self.norm_v(v), None if keys is not None else t, attn_mask,
                             keys=keys)
    return v + jnp.tanh(self.alpha_ca) * ca * gate

  def vision_to_language(self, t, v):
    """Step 2 (`bidirectional`): t [B, L, D] refined from the vision tokens v [B, N, D]; each
    text token reads the vision tokens, never the other text tokens."""
    t = t + self.vision_to_lang(self.norm_t(t), self.norm_v2(v))
    return t + self.text_mlp(self.norm_t2(t))

  def modulate(self, v, mod, has_text):
    """Step 3 (`global_modulation`), per vision token: v [B, N, D] -> [B, N, D]."""
    if not self.global_modulation:
      return v
    gate = has_text.astype(v.dtype)[:, None, None]
    return v + jnp.tanh(self.alpha_gm) * v * mod[:, None, :] * gate
