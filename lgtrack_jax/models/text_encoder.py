"""BERT-family text encoder (BERT, RoBERTa, MiniLM): post-LN Transformer encoder in Flax Linen.

The three families share one layout; they differ only in sizes, in `type_vocab_size` and in where
position ids start (`position_offset`: 0 for BERT/MiniLM, `pad_token_id + 1 = 2` for RoBERTa).
Weights come from a Hugging Face directory through `lgtrack_jax.weights.hf_text`.

Parameter tree (all float32, whatever `dtype` is; H hidden, I intermediate, V vocab,
P max positions, T type vocab, i = 0 .. num_layers - 1):

  embeddings/word/embedding         [V, H]
  embeddings/position/embedding     [P, H]
  embeddings/token_type/embedding   [T, H]
  embeddings/ln/{scale,bias}        [H]
  layer_{i}/attn/query/{kernel,bias}  [H, H], [H]   (kernels are [in, out])
  layer_{i}/attn/key/{kernel,bias}    [H, H], [H]
  layer_{i}/attn/value/{kernel,bias}  [H, H], [H]
  layer_{i}/attn/out/{kernel,bias}    [H, H], [H]
  layer_{i}/attn_ln/{scale,bias}      [H]
  layer_{i}/mlp/fc1/{kernel,bias}     [H, I], [I]
  layer_{i}/mlp/fc2/{kernel,bias}     [I, H], [H]
  layer_{i}/mlp_ln/{scale,bias}       [H]

Deterministic: no dropout anywhere (the tracker fine-tunes it, if at all, with a small lr).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from lgtrack_jax.models import layers

# Added to the attention logits of padding keys. Softmax runs in float32, where exp(-1e9 - x)
# is exactly 0 for any sane logit x, so padding gets no weight; unlike finfo.min it cannot
# overflow to -inf when added to a negative logit, so a fully padded row stays finite (uniform).
_MASK_BIAS = -1e9



# The architecture fields of `TextEncoder` (what config.json determines; everything but dtype).
TEXT_ENCODER_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads",
                       "intermediate_size", "max_position_embeddings", "type_vocab_size",
                       "layer_norm_eps", "position_offset")

class _Embeddings(nn.Module):
  """Word + position + token-type embeddings, then LayerNorm."""

  vocab_size: int
  hidden_size: int
  max_position_embeddings: int
  type_vocab_size: int
  layer_norm_eps: float
  position_offset: int
  dtype: Any

  @nn.compact
  def __call__(self, input_ids: jnp.ndarray) -> jnp.ndarray:
    """input_ids: int32 [B, L] -> [B, L, H] in `dtype`."""
    length = input_ids.shape[1]
    if length + self.position_offset > self.max_position_embeddings:
      raise ValueError(
          f"text length {length} (+ position offset {self.position_offset}) exceeds "
          f"max_position_embeddings={self.max_position_embeddings}")
    embed = lambda n, name: nn.Embed(n, self.hidden_size, dtype=self.dtype, name=name)
    words = embed(self.vocab_size, "word")(input_ids)
    # Right padding is assumed (the Tokenizer pads right): then arange + offset equals Hugging
    # Face's RoBERTa ids (cumsum of the mask + padding_idx) on every non-padding token.
    positions = jnp.arange(length, dtype=jnp.int32)[None] + self.position_offset
    pos = embed(self.max_position_embeddings, "position")(positions)
    # A single segment: token type ids are all zero.
    token_type = embed(self.type_vocab_size, "token_type")(jnp.zeros_like(input_ids))
    x = words + pos + token_type
    return nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="ln")(x)


class _SelfAttention(nn.Module):
  """Multi-head self-attention with an additive key-padding mask."""

  hidden_size: int
  num_heads: int
  dtype: Any

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask_bias: jnp.ndarray) -> jnp.ndarray:
    """x: [B, L, H]; mask_bias: float32 [B, 1, 1, L] (0 or _MASK_BIAS) -> [B, L, H]."""
    b, length, _ = x.shape
    head_dim = self.hidden_size // self.num_heads
    dense = lambda name: layers.Dense(self.hidden_size, self.dtype, name=name)

    def split(t: jnp.ndarray) -> jnp.ndarray:
      return t.reshape(b, length, self.num_heads, head_dim)

    q, k, v = split(dense("query")(x)), split(dense("key")(x)), split(dense("value")(x))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / head_dim**0.5
    # Softmax in float32 so that bf16 compute keeps the mask exact and the sum well conditioned.
    probs = nn.softmax(logits.astype(jnp.float32) + mask_bias, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, length, self.hidden_size)
    return dense("out")(out)


class _Mlp(nn.Module):
  """fc1 -> exact (erf) GELU -> fc2, as BERT's `hidden_act = "gelu"`."""

  hidden_size: int
  intermediate_size: int
  dtype: Any

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [B, L, H] -> [B, L, H]."""
    h = layers.Dense(self.intermediate_size, self.dtype, name="fc1")(x)
    h = nn.gelu(h, approximate=False)
    return layers.Dense(self.hidden_size, self.dtype, name="fc2")(h)


class _Layer(nn.Module):
  """One post-LN encoder layer: x = LN(x + Attn(x)); x = LN(x + MLP(x))."""

  hidden_size: int
  num_heads: int
  intermediate_size: int
  layer_norm_eps: float
  dtype: Any

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask_bias: jnp.ndarray) -> jnp.ndarray:
    """x: [B, L, H]; mask_bias: float32 [B, 1, 1, L] -> [B, L, H]."""
    ln = lambda name: nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name=name)
    attn = _SelfAttention(self.hidden_size, self.num_heads, self.dtype, name="attn")
    x = ln("attn_ln")(x + attn(x, mask_bias))
    mlp = _Mlp(self.hidden_size, self.intermediate_size, self.dtype, name="mlp")
    return ln("mlp_ln")(x + mlp(x))


class TextEncoder(nn.Module):
  """BERT-family encoder returning the last layer's token features.

  Attributes mirror a Hugging Face `config.json` (see `weights.hf_text.text_config_from_hf`).
  `dtype` is the compute dtype; parameters are always float32.
  """

  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  position_offset: int = 0  # RoBERTa: position ids start at padding_idx + 1 = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
    """Encodes token ids.

    Args:
      input_ids: int32 [B, L], right-padded.
      attention_mask: int32 (or bool) [B, L], 1 for real tokens, 0 for padding.

    Returns:
      Last hidden states [B, L, H] in `dtype`. Outputs at non-padding positions do not depend on
      the padding (its ids, or how much of it there is); outputs at padding positions are
      meaningless and must be masked by the caller.
    """
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} not divisible by "
                       f"num_heads {self.num_heads}")
    x = _Embeddings(self.vocab_size, self.hidden_size, self.max_position_embeddings,
                    self.type_vocab_size, self.layer_norm_eps, self.position_offset,
                    self.dtype, name="embeddings")(input_ids)
    mask_bias = jnp.where(attention_mask.astype(bool), 0.0, _MASK_BIAS).astype(jnp.float32)
    mask_bias = mask_bias[:, None, None, :]
    # A Python loop (over 6-24 layers, not tokens) keeps the names `layer_{i}` flat and obvious.
    for i in range(self.num_layers):
      x = _Layer(self.hidden_size, self.num_heads, self.intermediate_size, self.layer_norm_eps,
                 self.dtype, name=f"layer_{i}")(x, mask_bias)
    return x


def pool(tokens: jnp.ndarray, mask: jnp.ndarray, kind: str = "mean") -> jnp.ndarray:
  """Sentence vector from token features.

  Args:
    tokens: [B, L, H] token features.
    mask: [B, L], 1 for real tokens, 0 for padding (int or bool).
    kind: "mean" (mean over real tokens; an all-zero mask gives zeros, not NaN) or "cls"
      (the first token).

  Returns:
    [B, H] in `tokens.dtype`.
  """
  if kind == "cls":
    return tokens[:, 0]
  if kind != "mean":
    raise ValueError(f"unknown pooling kind {kind!r}; expected 'mean' or 'cls'")
  # Sums in float32: a bf16 sum over L tokens would lose the low bits of the mean.
  weights = mask.astype(jnp.float32)[..., None]
  count = jnp.maximum(weights.sum(axis=1), 1.0)
  return ((tokens.astype(jnp.float32) * weights).sum(axis=1) / count).astype(tokens.dtype)
