"""The tracker's CPU-tuned cross-attention: the clear form's projections folded through the short
side (`eval.cross_attention='folded'`, the default; 'clear' runs the model's own form).

LGTrack's cross-attentions pair hundreds of vision tokens with a sentence of a few text tokens
(EMIM, both directions) or one query with the search tokens (decoder). Projecting every vision
token through a D x D query, key, value or output matrix then costs far more than the attention.
Per head h, with Wq_h, Wk_h, Wv_h [D, Dh] and Wo_h [Dh, D]:

  few keys (Nk):    logits_h = x_q (Wq_h k_h^T) + bq_h k_h^T    out = sum_h a_h (v_h Wo_h) + bo
  few queries (Nq): logits_h = (q_h Wk_h^T) x_kv^T               o_h = (a_h x_kv) Wv_h + bv_h

so that the long side meets only [D, H * N_short] matrices built from the short side. Wo holds
its heads as row blocks ([H, Dh, D]), so `v_h Wo_h` is a product batched over heads with Wo as
stored. Wq, Wk and Wv hold theirs as column blocks ([D, H, Dh]): batched over heads, XLA would
transpose the D x D weight on every call, which on a CPU costs more than the product. So
`kernels_by_head` makes heads-major copies ([H, D, Dh]) once, in the BY_HEAD variable collection,
and the folds take them per head; without them the weights enter their products as the 2-D
matrices they are stored as, and the short side is laid out block-diagonally (H times the
multiply-adds of those products, still small).

`folded` takes the cheapest of the three forms (`fold_costs`) from the static shapes: with a
sentence cut to 8 tokens, H = 12 and D = 768, over 320 vision tokens, EMIM's language-to-vision
direction costs 0.30x the clear form and vision-to-language 0.43x; at 40 text tokens the clear
form is cheaper. Every form computes the clear form's function up to float rounding
(tests/tracking/test_kernels.py).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from lgtrack_jax.models import cross_attention as xattn

FOLDS = ("auto", "none", "keys", "queries")
BY_HEAD = "kernels_by_head"  # the variable collection of heads-major Wq, Wk, Wv


def fold_costs(nq: int, nk: int, d: int, heads: int) -> dict[str, int]:
  """Multiply-adds of each form for one example, as computed without BY_HEAD kernels
  (block-diagonal short side against Wq, Wk and Wv; per head against Wo). With them the folds
  cost less still, so the choice stands."""
  return {
      "none": 2 * (nq + nk) * d * d + 2 * nq * nk * d,
      "keys": 3 * nk * d * d + heads * nk * d * d + 2 * nq * heads * nk * d,
      "queries": 2 * nq * d * d + 2 * heads * nq * d * d + 2 * nq * heads * nk * d,
  }


def folded(module: xattn.CrossAttention, w: xattn.Weights, x_q, x_kv, mask, keys,
           fold: str = "auto"):
  """A `CrossAttention.kernel`: the fold `fold` ('auto': the cheapest for the shapes), and 'none'
  the clear form. Its key side (x_q None; used with `keys`) is the "keys" fold's:
  {kq [B, Nk, D, H], kbias [B, Nk, H], vo [B, Nk, H, D]}."""
  if fold not in FOLDS:
    raise ValueError(f"fold={fold!r}: expected one of {FOLDS}")
  if x_q is None or keys is not None:
    if fold not in ("auto", "keys"):
      raise ValueError(f"a key side is the 'keys' fold's; this kernel's fold is {fold!r}")
    fold = "keys"
  elif fold == "auto":
    costs = fold_costs(x_q.shape[1], x_kv.shape[1], x_q.shape[2], module.num_heads)
    fold = min(costs, key=costs.get)
  # Made (by `kernels_by_head`) whatever form these shapes take: the tracker's shapes may take
  # another (`kernels_by_head` runs the model at text.max_len tokens, the tracker at fewer).
  by_head = _by_head(module, w)
  if fold == "none":
    return xattn.attend(module, w, x_q, x_kv, mask, keys)
  if fold == "keys":
    if keys is None:
      keys = _fold_keys(module, w, by_head, x_kv)
    return keys if x_q is None else _attend_folded_keys(module, w, x_q, mask, keys)
  return _fold_queries(module, w, by_head, x_q, x_kv, mask)


def _by_head(module, w: xattn.Weights) -> dict[str, jnp.ndarray] | None:
  """Wq, Wk, Wv heads-major [H, D, Dh] from the BY_HEAD collection, when the caller made it
  (`kernels_by_head`) or is making it (mutable); else None."""
  if module.is_initializing() or not (module.is_mutable_collection(BY_HEAD)
                                      or module.has_variable(BY_HEAD, "query_kernel")):
    return None
  # (Variables named after the kernels: the names "query" etc. are the submodules'.)
  return {name: module.variable(BY_HEAD, f"{name}_kernel",
                                lambda k=k: k.transpose(1, 0, 2)).value.astype(module.dtype)
          for name, k in (("query", w.wq), ("key", w.wk), ("value", w.wv))}


def _per_head(module, w: xattn.Weights, by_head, name: str, t: jnp.ndarray) -> jnp.ndarray:
  """t [B, N, H, Dh] -> [B, D, H * N]: head h's block is W_h t_h^T (W: Wq, Wk or Wv by `name`)."""
  b, n, h, dh = t.shape
  d, dt = h * dh, module.dtype
  if by_head is None:  # the weight as stored, against t laid out block-diagonally
    eye = jnp.eye(h, dtype=dt)
    blocks = t.transpose(0, 2, 3, 1)[:, :, :, None, :] * eye[:, None, :, None]
    weight = {"query": w.wq, "key": w.wk, "value": w.wv}[name].reshape(d, d)
    return _einsum_acc(dt, "dc,bcm->bdm", weight, blocks.reshape(b, d, h * n)).astype(dt)
  out = xattn.einsum_for(dt)("hde,hem->hdm", by_head[name],
                             t.transpose(2, 3, 0, 1).reshape(h, dh, b * n))
  return out.reshape(h, d, b, n).transpose(2, 1, 0, 3).reshape(b, d, h * n)


def _einsum_acc(dtype, *args):
  # For products of a weight with a block-diagonal operand: `layers.dot_acc32`'s bf16 products
  # fail on XLA:CPU there (no bf16 x bf16 = f32 kernel for the layout XLA then picks).
  return jnp.einsum(*args, preferred_element_type=xattn.accumulation_dtype(dtype))


def _fold_keys(module, w: xattn.Weights, by_head, x_kv: jnp.ndarray) -> xattn.KeySide:
  """The "keys" fold's key side of x_kv [B, Nk, D] (see `folded`)."""
  b, nk, d = x_kv.shape
  h, dh = w.wq.shape[1:]
  einsum = xattn.einsum_for(module.dtype)
  k = einsum("bkd,dhe->bkhe", x_kv, w.wk) * jnp.asarray(dh ** -0.5, module.dtype)
  v = einsum("bkd,dhe->bkhe", x_kv, w.wv) + w.bv
  # Wo's head blocks are its rows: a product batched over heads takes Wo as stored. The batch of
  # sequences joins the rows ([H, B * Nk, Dh] x [H, Dh, D]), the product layout XLA:CPU has a
  # bf16 x bf16 = f32 kernel for.
  vo = einsum("hme,hef->hmf", v.transpose(2, 0, 1, 3).reshape(h, b * nk, dh), w.wo)
  acc = xattn.accumulation_dtype(module.dtype)
  kbias = (k.astype(acc) * w.bq.astype(acc)).sum(-1).astype(module.dtype)
  return {"kq": _per_head(module, w, by_head, "query", k).reshape(b, d, h, nk
                                                                   ).transpose(0, 3, 1, 2),
          "kbias": kbias,  # [B, Nk, H]
          "vo": vo.reshape(h, b, nk, d).transpose(1, 2, 0, 3)}


def _attend_folded_keys(module, w: xattn.Weights, x_q, mask, keys: xattn.KeySide):
  """x_q [B, Nq, D] over a "keys" fold's key side -> [B, Nq, D]."""
  b, nq, d = x_q.shape
  nk, h = keys["kbias"].shape[1:]
  dt = module.dtype
  einsum = xattn.einsum_for(dt)
  kq = keys["kq"].astype(dt).transpose(0, 2, 3, 1).reshape(b, d, h * nk)
  kbias = keys["kbias"].astype(dt).transpose(0, 2, 1).reshape(b, 1, h * nk)
  vo = keys["vo"].astype(dt).transpose(0, 2, 1, 3).reshape(b, h * nk, d)
  logits = einsum("bqd,bdm->bqm", x_q, kq) + kbias
  a = xattn.softmax(logits.reshape(b, nq, h, nk).transpose(0, 2, 1, 3), mask, dt)
  return einsum("bqm,bmf->bqf", a.transpose(0, 2, 1, 3).reshape(b, nq, h * nk), vo) + w.bo


def _fold_queries(module, w: xattn.Weights, by_head, x_q, x_kv, mask):
  """The "queries" fold: x_q [B, Nq, D] (few) over x_kv [B, Nk, D] -> [B, Nq, D]."""
  b, nq, d = x_q.shape
  nk = x_kv.shape[1]
  h, dh = w.wq.shape[1:]
  dt = module.dtype
  einsum = xattn.einsum_for(dt)
  q = (einsum("bqd,dhe->bqhe", x_q, w.wq) + w.bq) * jnp.asarray(dh ** -0.5, dt)
  qk = _per_head(module, w, by_head, "key", q)  # [B, D, H * Nq]
  # The product with x_kv's rows ([B, Nk, H * Nq], as the "keys" fold's logits), then
  # transposed: XLA:CPU runs "bdm,bkd->bmk" at half the speed. In the compute dtype: XLA:CPU has
  # no bf16 x bf16 = f32 kernel for this product at batch > 1, and one rounding to bf16 is what
  # every other logit gets.
  logits = _einsum_acc(dt, "bkd,bdm->bkm", x_kv, qk).astype(dt)
  a = xattn.softmax(logits.transpose(0, 2, 1).reshape(b, h, nq, nk), mask, dt)
  ax = einsum("bmk,bkd->bmd", a.reshape(b, h * nq, nk), x_kv)  # [B, H * Nq, D]
  if by_head is None:  # every head's Wv, keep each head's own block
    full = einsum("bmd,dc->bmc", ax, w.wv.reshape(d, d)).reshape(b, h, nq, h, dh)
    o = jnp.diagonal(full, axis1=1, axis2=3).transpose(0, 1, 3, 2)  # [B, Nq, H, Dh]
  else:
    ax = ax.reshape(b, h, nq, d).transpose(1, 0, 2, 3).reshape(h, b * nq, d)
    o = einsum("hmd,hde->hme", ax, by_head["value"]).reshape(h, b, nq, dh).transpose(1, 2, 0, 3)
  return einsum("bqc,cf->bqf", (o + w.bv).reshape(b, nq, d), w.wo.reshape(d, d)) + w.bo


KERNELS: dict[str, Callable | None] = {"clear": None, "folded": folded}


def cross_attention_kernel(name: str) -> Callable | None:
  """The `CrossAttention.kernel` of `eval.cross_attention` (None: the model's clear form)."""
  if name not in KERNELS:
    raise ValueError(f"eval.cross_attention={name!r}: expected one of {sorted(KERNELS)}")
  return KERNELS[name]


def kernels_by_head(apply_fn: Callable, variables: dict, *args, **kwargs) -> dict:
  """The BY_HEAD collection of every folded CrossAttention in a model: `apply_fn(variables,
  *args, mutable=[BY_HEAD], **kwargs)` run once, jitted (XLA keeps only the transposes of the
  kernels, so any inputs of the right structure will do). Pass it with the params,
  `{"params": ..., BY_HEAD: ...}`, for inference only: gradients do not reach Wq, Wk and Wv
  through these copies."""
  # A model without cross-attentions (OSTrack), or with the clear kernel, has an empty one.
  return jax.jit(lambda v: apply_fn(v, *args, mutable=[BY_HEAD], **kwargs)[1].get(BY_HEAD, {}))(
      variables)


def with_fold(fold: str) -> Callable:
  """`folded` fixed to one form (tests and benchmarks compare the forms)."""
  return functools.partial(folded, fold=fold)
