"""Cross-attention of one token set over another (EMIM, both directions; the decoder's query over
the search tokens), with the parameters of `nn.MultiHeadDotProductAttention`.

The module owns the parameters and the clear form of the function (`attend`). A caller may swap
in another implementation of the same function through `kernel` (flax's `attention_fn` idea, one
level up: the projections are included); the tracker does, with the folded forms of
`lgtrack_jax/tracking/kernels.py`, selected by `eval.cross_attention`.

A key side (`key_side`, or the module called with x_q None) is what the attention computes from
x_kv alone, before any query comes in: the tracker computes it once per sequence where x_kv is the
sentence. Its arrays, whatever the kernel, hold the keys on axis 1, so `cut_keys` serves all.

The key bias bk is left out: it adds the same logit to all keys of a query, which softmax ignores.
(Its gradient is then exactly 0, where flax's is rounding noise that Adam would blow up to
lr-sized random steps.) The parameter stays, so checkpoints move freely between this module and
flax's.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from lgtrack_jax.models import layers

KeySide = dict[str, jnp.ndarray]


class Weights(NamedTuple):
  """The projections in the compute dtype: query/key/value kernels [D, H, Dh] and biases [H, Dh]
  (the key bias is not used, see the module docstring), out kernel [H, Dh, D] and bias [D]."""

  wq: jnp.ndarray
  bq: jnp.ndarray
  wk: jnp.ndarray
  wv: jnp.ndarray
  bv: jnp.ndarray
  wo: jnp.ndarray
  bo: jnp.ndarray


class _Projection(nn.Module):
  """The `kernel` [*in_shape, *out_shape] and `bias` [*out_shape] of `nn.DenseGeneral`, with its
  initialisers (LeCun normal over the flattened kernel, zeros), handed back unapplied."""

  in_shape: tuple[int, ...]
  out_shape: tuple[int, ...]

  @nn.compact
  def __call__(self) -> tuple[jnp.ndarray, jnp.ndarray]:
    def kernel_init(key, shape, dtype=jnp.float32):
      flat = (math.prod(self.in_shape), math.prod(self.out_shape))
      return nn.initializers.lecun_normal()(key, flat, dtype).reshape(shape)

    kernel = self.param("kernel", kernel_init, (*self.in_shape, *self.out_shape))
    bias = self.param("bias", nn.initializers.zeros, self.out_shape)
    return kernel, bias


def einsum_for(dtype: Any) -> Callable:
  """`jnp.einsum` under the dtype policy: 16-bit products accumulate in float32."""
  return functools.partial(jnp.einsum, _dot_general=layers.dot_general_for(dtype)
                           or jax.lax.dot_general)


def accumulation_dtype(dtype: Any) -> jnp.dtype:
  """float32 for 16-bit dtypes, else the dtype itself (float64 stays exact)."""
  return jnp.promote_types(dtype, jnp.float32)


def softmax(logits: jnp.ndarray, mask: jnp.ndarray | None, dtype: Any) -> jnp.ndarray:
  """Softmax over the last axis in `accumulation_dtype`, masked like flax (a fully masked row is
  uniform) -> `dtype`."""
  acc = accumulation_dtype(dtype)
  logits = logits.astype(acc)
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(acc).min)
  return jax.nn.softmax(logits, axis=-1).astype(dtype)


def key_side(w: Weights, x_kv: jnp.ndarray) -> KeySide:
  """The clear form's key side: x_kv [B, Nk, D] -> {k, v: [B, Nk, H, Dh]}."""
  einsum = einsum_for(x_kv.dtype)
  return {"k": einsum("bkd,dhe->bkhe", x_kv, w.wk),
          "v": einsum("bkd,dhe->bkhe", x_kv, w.wv) + w.bv}


def attend(module: CrossAttention, w: Weights, x_q: jnp.ndarray | None,
           x_kv: jnp.ndarray | None, mask: jnp.ndarray | None, keys: KeySide | None):
  """The clear form, the default `kernel`: queries, keys and values projected, softmax, out.
  Arguments as `CrossAttention.__call__`'s, after its checks and casts."""
  if keys is None:
    keys = key_side(w, x_kv)
  if x_q is None:
    return keys
  b, nq, d = x_q.shape
  einsum = einsum_for(module.dtype)
  scale = jnp.asarray(w.wq.shape[-1] ** -0.5, module.dtype)
  q = (einsum("bqd,dhe->bqhe", x_q, w.wq) + w.bq) * scale
  k, v = keys["k"].astype(module.dtype), keys["v"].astype(module.dtype)
  a = softmax(einsum("bqhe,bkhe->bhqk", q, k), mask, module.dtype)
  o = einsum("bhqk,bkhe->bqhe", a, v).reshape(b, nq, d)
  return einsum("bqc,cf->bqf", o, w.wo.reshape(d, d)) + w.bo


class CrossAttention(nn.Module):
  """Multi-head attention of queries x_q [B, Nq, D] over x_kv [B, Nk, D], mask broadcastable to
  [B, H, Nq, Nk] (True: attend) -> [B, Nq, D] of `dtype`. For 16-bit dtypes, products accumulate
  in float32 and the softmax runs in float32, as in `layers.Attention`.

  `kernel`: the implementation, `kernel(module, weights, x_q, x_kv, mask, keys)` (`attend`'s
  signature): None for `attend`; the tracker's are in tracking/kernels.py.
  """

  num_heads: int
  dtype: Any = jnp.float32
  kernel: Callable | None = None

  @nn.compact
  def __call__(self, x_q: jnp.ndarray | None, x_kv: jnp.ndarray | None,
               mask: jnp.ndarray | None = None, keys: KeySide | None = None):
    """`keys`: a key side computed earlier by a call with x_q None (which returns it) in place of
    x_kv. The key side depends on x_kv alone, so a tracker computes it once per sequence where
    x_kv is the sentence's (`LGTrack.condition`); `cut_keys` keeps its first keys."""
    if (x_kv is None) == (keys is None) or (x_q is None and keys is not None):
      raise ValueError("give two of x_q, x_kv and keys: x_q and x_kv (attention), x_kv alone "
                       "(its key side), or x_q and keys (attention over a key side)")
    d = (x_kv if x_q is None else x_q).shape[-1]
    h = self.num_heads
    if d % h:
      raise ValueError(f"width {d} is not divisible by num_heads={h}")
    dh = d // h
    params = {name: _Projection((d,), (h, dh), name=name)() for name in ("query", "key", "value")}
    params["out"] = _Projection((h, dh), (d,), name="out")()
    (wq, bq), (wk, _), (wv, bv), (wo, bo) = (
        (kernel.astype(self.dtype), bias.astype(self.dtype)) for kernel, bias in
        (params["query"], params["key"], params["value"], params["out"]))
    x_q, x_kv = (None if x is None else x.astype(self.dtype) for x in (x_q, x_kv))
    if mask is not None and x_q is not None:
      nk = x_kv.shape[1] if keys is None else jax.tree.leaves(keys)[0].shape[1]
      mask = jnp.broadcast_to(mask, (x_q.shape[0], h, x_q.shape[1], nk))
    return (self.kernel or attend)(self, Weights(wq, bq, wk, wv, bv, wo, bo), x_q, x_kv, mask,
                                   keys)


def cut_keys(keys: KeySide, n: int) -> KeySide:
  """A key side of the first n keys: the same as the key side of x_kv[:, :n], since each key's
  entries depend on that key alone (every kernel keeps the keys on axis 1)."""
  return {name: a[:, :n] for name, a in keys.items()}
