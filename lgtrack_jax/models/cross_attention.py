"""Cross-attention between a long and a short token set, with the projections folded through the
short side.

LGTrack's cross-attentions pair hundreds of vision tokens with a sentence of a few text tokens
(EMIM, both directions) or one query with the search tokens (decoder). Projecting every vision
token through a D x D query, key, value or output matrix then costs far more than the attention.
Per head h, with Wq_h, Wk_h, Wv_h [D, Dh] and Wo_h [Dh, D]:

  few keys (Nk):    logits_h = x_q (Wq_h k_h^T) + bq_h k_h^T    out = sum_h a_h (v_h Wo_h) + bo
  few queries (Nq): logits_h = (q_h Wk_h^T) x_kv^T               o_h = (a_h x_kv) Wv_h + bv_h

so that the long side meets only [D, H * N_short] matrices built from the short side. Wo holds
its heads as row blocks ([H, Dh, D]), so `v_h Wo_h` is a product batched over heads with Wo as
stored. Wq, Wk and Wv hold theirs as column blocks ([D, H, Dh]): batched over heads, XLA would
transpose the D x D weight on every call, which on a CPU costs more than the product (1.2-1.9 ms a
weight in the tracker). Two ways round that:
  - inference (`LGTracker`): `kernels_by_head` makes heads-major copies ([H, D, Dh]) once, in the
    BY_HEAD variable collection, and the folds take them per head;
  - without them (training, or any caller that does not make them): the weights enter their
    products as the 2-D matrices they are stored as, and the short side is laid out
    block-diagonally (H times the multiply-adds of those products, still small).

The module takes the cheapest of the three forms (`fold_costs`) from the static shapes: with a
sentence cut to 8 tokens (the tracker), H = 12 and D = 768, over 320 vision tokens, EMIM's
language-to-vision direction (few keys) costs 0.30x the plain form and vision-to-language (few
queries) 0.43x, before the heads-major kernels; at 40 text tokens (training) the plain form is
cheaper.

The key bias bk is left out of every form: it adds the same logit to all keys of a query, which
softmax ignores. (Its gradient is then exactly 0, where flax's is rounding noise that Adam would
blow up to lr-sized random steps.)

The parameters are those of `nn.MultiHeadDotProductAttention` (query / key / value / out, same
shapes, names and initialisers), and the function is the same up to float rounding, so
checkpoints move freely between the two.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lgtrack_jax.models import layers

FOLDS = ("auto", "none", "keys", "queries")
BY_HEAD = "kernels_by_head"  # the variable collection of heads-major Wq, Wk, Wv (inference)


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


def fold_costs(nq: int, nk: int, d: int, heads: int) -> dict[str, int]:
  """Multiply-adds of each form for one example, as computed without BY_HEAD kernels
  (block-diagonal short side against Wq, Wk and Wv; per head against Wo). With them the folds
  cost less still, so the choice stands."""
  return {
      "none": 2 * (nq + nk) * d * d + 2 * nq * nk * d,
      "keys": 3 * nk * d * d + heads * nk * d * d + 2 * nq * heads * nk * d,
      "queries": 2 * nq * d * d + 2 * heads * nq * d * d + 2 * nq * heads * nk * d,
  }


class CrossAttention(nn.Module):
  """Multi-head attention of queries x_q [B, Nq, D] over x_kv [B, Nk, D], mask broadcastable to
  [B, H, Nq, Nk] (True: attend) -> [B, Nq, D] of `dtype`; see the module docstring.

  `fold`: 'auto' (the cheapest form for the shapes), 'none', 'keys' or 'queries'. For 16-bit
  dtypes, products accumulate in float32 and the softmax runs in float32, as in `layers.Attention`.
  """

  num_heads: int
  dtype: Any = jnp.float32
  fold: str = "auto"

  @nn.compact
  def __call__(self, x_q: jnp.ndarray | None, x_kv: jnp.ndarray | None,
               mask: jnp.ndarray | None = None, keys: dict[str, jnp.ndarray] | None = None):
    """`keys`: the key side of the "keys" fold, computed earlier by a call with x_q None (then
    the return value: {kq [B, D, H, Nk], kbias [B, H, Nk], vo [B, H, Nk, D]}), in place of
    x_kv. The key side depends on x_kv alone, so a tracker computes it once per sequence where
    x_kv is the sentence's (`LGTrack.condition`); `cut_keys` keeps its first keys."""
    if self.fold not in FOLDS:
      raise ValueError(f"fold={self.fold!r}: expected one of {FOLDS}")
    if (x_kv is None) == (keys is None) or (x_q is None and keys is not None):
      raise ValueError("give two of x_q, x_kv and keys: x_q and x_kv (attention), x_kv alone "
                       "(its key side), or x_q and keys (attention over a key side)")
    if x_q is None:  # the key side alone: no queries, so only the key-side shapes
      b, nk, d = x_kv.shape
      nq = None
    else:
      b, nq, d = x_q.shape
      nk = x_kv.shape[1] if keys is None else keys["kbias"].shape[-1]
    h = self.num_heads
    if d % h:
      raise ValueError(f"width {d} is not divisible by num_heads={h}")
    dh = d // h
    params = {name: _Projection((d,), (h, dh), name=name)() for name in ("query", "key", "value")}
    params["out"] = _Projection((h, dh), (d,), name="out")()
    dt = self.dtype
    (wq, bq), (wk, _), (wv, bv), (wo, bo) = (
        (kernel.astype(dt), bias.astype(dt)) for kernel, bias in
        (params["query"], params["key"], params["value"], params["out"]))
    x_q, x_kv = (None if x is None else x.astype(dt) for x in (x_q, x_kv))
    einsum = functools.partial(jnp.einsum, _dot_general=layers.dot_general_for(dt)
                               or jax.lax.dot_general)
    # For the products of a weight with a block-diagonal operand: `layers.dot_acc32`'s bf16
    # backward products fail on XLA:CPU there (its barrier is bypassed: no bf16 x bf16 = f32
    # kernel for the layout XLA then picks), so these keep JAX's own float32 backward.
    einsum_f32 = lambda *args: jnp.einsum(*args, preferred_element_type=jnp.float32).astype(dt)
    scale = jnp.asarray(dh ** -0.5, dt)
    fold = self.fold
    if x_q is None or keys is not None:
      if fold not in ("auto", "keys"):
        raise ValueError(f"a key side is the 'keys' fold's; this module's fold is {fold!r}")
      fold = "keys"
    elif fold == "auto":
      costs = fold_costs(nq, nk, d, h)
      fold = min(costs, key=costs.get)
    if mask is not None and nq is not None:
      mask = jnp.broadcast_to(mask, (b, h, nq, nk))

    def softmax(logits):  # [B, H, Nq, Nk] over the keys; float32, masked like flax
      logits = logits.astype(jnp.float32)
      if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
      return jax.nn.softmax(logits, axis=-1).astype(dt)

    # The weights as the 2-D matrices they are stored as ([D, H * Dh], [H * Dh, D]); see above.
    w2 = {name: w.reshape(d, h * dh) for name, w in (("query", wq), ("key", wk), ("value", wv))}
    wo2 = wo.reshape(h * dh, d)
    eye = jnp.eye(h, dtype=dt)
    # Inference: Wq, Wk, Wv heads-major ([H, D, Dh]) in the BY_HEAD collection, made once by
    # `kernels_by_head`; the folds then take them per head (see the module docstring).
    by_head = None
    if not self.is_initializing() and (self.is_mutable_collection(BY_HEAD)
                                       or self.has_variable(BY_HEAD, "query_kernel")):
      # (Variables named after the kernels: the names "query" etc. are the submodules'.)
      by_head = {name: self.variable(BY_HEAD, f"{name}_kernel",
                                     lambda w=w: w.transpose(1, 0, 2)).value
                 for name, w in (("query", wq), ("key", wk), ("value", wv))}
      by_head = {name: w.astype(dt) for name, w in by_head.items()}

    def block_diag(t):  # [B, N, H, Dh] -> [B, H * Dh, H * N]: head h's block is t[:, :, h]^T
      n = t.shape[1]
      blocks = t.transpose(0, 2, 3, 1)[:, :, :, None, :] * eye[:, None, :, None]
      return blocks.reshape(b, h * dh, h * n)

    def per_head(name, t):  # t [B, N, H, Dh] -> [B, D, H * N]: head h's block is W_h t_h^T
      if by_head is None:
        return einsum_f32("dc,bcm->bdm", w2[name], block_diag(t))
      n = t.shape[1]
      out = einsum("hde,hem->hdm", by_head[name], t.transpose(2, 3, 0, 1).reshape(h, dh, b * n))
      return out.reshape(h, d, b, n).transpose(2, 1, 0, 3).reshape(b, d, h * n)

    if fold == "keys":
      if keys is None:
        k = einsum("bkd,dc->bkc", x_kv, w2["key"]).reshape(b, nk, h, dh) * scale
        v = (einsum("bkd,dc->bkc", x_kv, w2["value"]) + bv.reshape(-1)).reshape(b, nk, h, dh)
        # Wo's head blocks are its rows: a product batched over heads takes Wo as stored. The
        # batch of sequences joins the rows ([H, B * Nk, Dh] x [H, Dh, D]), the product layout
        # XLA:CPU has a bf16 x bf16 = f32 kernel for, forward and backward.
        vo = einsum("hme,hef->hmf", v.transpose(2, 0, 1, 3).reshape(h, b * nk, dh), wo)
        keys = {
            "kq": per_head("query", k).reshape(b, d, h, nk),
            "kbias": (k.astype(jnp.float32) * bq.astype(jnp.float32)).sum(-1).astype(dt
                                                                             ).transpose(0, 2, 1),
            "vo": vo.reshape(h, b, nk, d).transpose(1, 0, 2, 3),
        }
        if x_q is None:
          return keys
      kq = keys["kq"].astype(dt).reshape(b, d, h * nk)
      kbias = keys["kbias"].astype(dt).reshape(b, 1, h * nk)
      vo = keys["vo"].astype(dt).reshape(b, h * nk, d)
      logits = einsum("bqd,bdm->bqm", x_q, kq) + kbias
      a = softmax(logits.reshape(b, nq, h, nk).transpose(0, 2, 1, 3))  # [B, H, Nq, Nk]
      return einsum("bqm,bmf->bqf", a.transpose(0, 2, 1, 3).reshape(b, nq, h * nk), vo) + bo
    if fold == "queries":
      q = (einsum("bqd,dc->bqc", x_q, w2["query"]) + bq.reshape(-1)).reshape(b, nq, h, dh) * scale
      qk = per_head("key", q)  # [B, D, H * Nq]
      # The product with x_kv's rows ([B, Nk, H * Nq], as the "keys" fold's logits), then
      # transposed: XLA:CPU runs "bdm,bkd->bmk" at half the speed (0.75 against 0.38 ms at
      # EMIM's shapes, transpose included).
      a = softmax(einsum_f32("bkd,bdm->bkm", x_kv, qk).transpose(0, 2, 1).reshape(b, h, nq, nk))
      ax = einsum("bmk,bkd->bmd", a.reshape(b, h * nq, nk), x_kv)  # [B, H * Nq, D]
      if by_head is None:  # every head's Wv, keep each head's own block
        full = einsum("bmd,dc->bmc", ax, w2["value"]).reshape(b, h, nq, h, dh)
        o = jnp.diagonal(full, axis1=1, axis2=3).transpose(0, 1, 3, 2)  # [B, Nq, H, Dh]
      else:
        ax = ax.reshape(b, h, nq, d).transpose(1, 0, 2, 3).reshape(h, b * nq, d)
        o = einsum("hmd,hde->hme", ax, by_head["value"])
        o = o.reshape(h, b, nq, dh).transpose(1, 2, 0, 3)
      o = o + bv
      return einsum("bqc,cf->bqf", o.reshape(b, nq, h * dh), wo2) + bo
    q = (einsum("bqd,dhe->bqhe", x_q, wq) + bq) * scale
    k = einsum("bkd,dhe->bkhe", x_kv, wk)
    v = einsum("bkd,dhe->bkhe", x_kv, wv) + bv
    a = softmax(einsum("bqhe,bkhe->bhqk", q, k))
    return einsum("bqc,cf->bqf", einsum("bhqk,bkhe->bqhe", a, v).reshape(b, nq, d), wo2) + bo


def cut_keys(keys: dict[str, jnp.ndarray], n: int) -> dict[str, jnp.ndarray]:
  """A key side (`CrossAttention` with x_q None) of the first n keys: the same as the key side of
  x_kv[:, :n], since each key's entries depend on that key alone."""
  return {"kq": keys["kq"][..., :n], "kbias": keys["kbias"][..., :n],
          "vo": keys["vo"][:, :, :n]}


def kernels_by_head(apply_fn: Callable, variables: dict, *args, **kwargs) -> dict:
  """The BY_HEAD collection of every CrossAttention in a model: `apply_fn(variables, *args,
  mutable=[BY_HEAD], **kwargs)` run once, jitted (XLA keeps only the transposes of the kernels,
  so any inputs of the right structure will do). Pass it with the params,
  `{"params": ..., BY_HEAD: ...}`, for inference only: gradients do not reach Wq, Wk and Wv
  through these copies."""
  # A model without cross-attentions (OSTrack) has an empty collection.
  return jax.jit(lambda v: apply_fn(v, *args, mutable=[BY_HEAD], **kwargs)[1].get(BY_HEAD, {}))(
      variables)
