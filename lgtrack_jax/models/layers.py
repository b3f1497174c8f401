"""Dense, attention and convolution layers with the compute-dtype policy of `config.model.dtype`.

Parameters are always float32; activations and matmul inputs take the compute dtype. With a 16-bit
compute dtype every matmul and convolution accumulates in float32 (`preferred_element_type`) and
casts the result back, and attention softmax runs in float32. That is what TPUs and GPUs do inside
their bf16 units anyway, so there it only fixes the numerics on paper; on CPUs with AMX/AVX512-BF16
it is also what lets XLA hand the product to oneDNN's bf16 kernels (4x a float32 matmul on this
project's Xeon), where a bf16 -> bf16 product falls back to a slower path than float32.

Every model file builds its layers here, so the policy lives in one place.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ATTENTION_IMPLS = ("flax", "xla", "cudnn", "matmul")
CONV_IMPLS = ("xla", "matmul")


def is_low_precision(dtype: Any) -> bool:
  """True for 16-bit float compute dtypes (bfloat16, float16)."""
  return jnp.dtype(dtype).itemsize < 4


def _free_dims(ndim: int, contract, batch) -> list[int]:
  """The dims of a dot_general operand that are neither contracted nor batch, in order."""
  return [i for i in range(ndim) if i not in contract and i not in batch]


def _batched_matmul_acc32(a, b, dimension_numbers, precision):
  """`lax.dot_general(a, b, dimension_numbers)` accumulating in float32, computed as one batched
  matrix product [Bt, M, K] x [Bt, K, N]. XLA:CPU has bf16 x bf16 = f32 kernels for that form
  only (its generic dot has none), so on CPU the laid-out operands pass an optimization barrier:
  without it XLA folds the layout back into the product's dimension numbers. Other backends
  take any form, and get no barrier."""
  (ac, bc), (ab, bb) = dimension_numbers
  a_free, b_free = _free_dims(a.ndim, ac, ab), _free_dims(b.ndim, bc, bb)
  size = lambda x, dims: int(np.prod([x.shape[i] for i in dims], dtype=np.int64))
  a3 = a.transpose((*ab, *a_free, *ac)).reshape(size(a, ab), size(a, a_free), size(a, ac))
  b3 = b.transpose((*bb, *bc, *b_free)).reshape(size(b, bb), size(b, bc), size(b, b_free))
  if jax.default_backend() == "cpu":
    a3, b3 = jax.lax.optimization_barrier((a3, b3))
  out = jax.lax.dot_general(a3, b3, (((2,), (1,)), ((0,), (0,))), precision=precision,
                            preferred_element_type=jnp.float32)
  return out.reshape(*[a.shape[i] for i in ab], *[a.shape[i] for i in a_free],
                     *[b.shape[i] for i in b_free])


def _dot_grads(ct, lhs, rhs, dimension_numbers, precision):
  """The cotangents of lhs and rhs of `lax.dot_general(lhs, rhs, dimension_numbers)` (JAX's
  transpose rules), each one product of the 16-bit cotangent and operand accumulating in float32.
  """
  (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
  x_kept = _free_dims(lhs.ndim, x_contract, x_batch)
  y_kept = _free_dims(rhs.ndim, y_contract, y_batch)
  nb = len(x_batch)
  ct_batch = tuple(range(nb))
  ct_x = tuple(range(nb, nb + len(x_kept)))  # ct = [batch, lhs kept, rhs kept]
  ct_y = tuple(range(nb + len(x_kept), ct.ndim))
  acc = lambda a, b, dims: _batched_matmul_acc32(a, b, dims, precision)
  # d lhs = ct . rhs over rhs's kept dims: [batch, lhs kept, rhs contract (rhs order)].
  d_lhs = acc(ct, rhs, ((ct_y, tuple(y_kept)), (ct_batch, tuple(y_batch))))
  lhs_of_y = [x_contract[list(y_contract).index(j)] for j in sorted(y_contract)]
  d_lhs = d_lhs.transpose(tuple(np.argsort([*x_batch, *x_kept, *lhs_of_y])))
  # d rhs = lhs . ct over lhs's kept dims: [batch, lhs contract (lhs order), rhs kept].
  d_rhs = acc(lhs, ct, ((tuple(x_kept), ct_x), (tuple(x_batch), ct_batch)))
  rhs_of_x = [y_contract[list(x_contract).index(i)] for i in sorted(x_contract)]
  d_rhs = d_rhs.transpose(tuple(np.argsort([*y_batch, *rhs_of_x, *y_kept])))
  return d_lhs, d_rhs


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _dot_acc32(lhs, rhs, dimension_numbers, precision, out_dtype):
  """16-bit lhs/rhs -> `out_dtype`, accumulating in float32, and so is the backward pass.

  Differentiated as is, the backward products would take the float32 cotangent of the float32
  accumulator and the 16-bit operands: mixed products that XLA runs in float32 (on this CPU 5x
  slower than bf16 x bf16 -> f32; on GPUs off the tensor cores' bf16 rate). Here the cotangent
  is rounded to the operands' dtype first, which is exact when the output was cast to 16 bits
  (a float32 output's cotangent loses what a bf16 activation's would)."""
  return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                             preferred_element_type=jnp.float32).astype(out_dtype)


def _dot_acc32_fwd(lhs, rhs, dimension_numbers, precision, out_dtype):
  return _dot_acc32(lhs, rhs, dimension_numbers, precision, out_dtype), (lhs, rhs)


def _dot_acc32_bwd(dimension_numbers, precision, out_dtype, residuals, ct):
  del out_dtype
  lhs, rhs = residuals
  d_lhs, d_rhs = _dot_grads(ct.astype(lhs.dtype), lhs, rhs, dimension_numbers, precision)
  return d_lhs.astype(lhs.dtype), d_rhs.astype(rhs.dtype)


_dot_acc32.defvjp(_dot_acc32_fwd, _dot_acc32_bwd)


def dot_acc32(lhs, rhs, dimension_numbers, precision=None, out_dtype=None) -> jnp.ndarray:
  """`lax.dot_general` accumulating in float32, returning `out_dtype` (default: the operands'
  dtype). For 16-bit operands the backward products are 16-bit too (see `_dot_acc32`)."""
  out_dtype = jnp.result_type(lhs, rhs) if out_dtype is None else out_dtype
  if not (is_low_precision(lhs.dtype) and lhs.dtype == rhs.dtype):
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=jnp.float32).astype(out_dtype)
  dims = tuple(tuple(tuple(int(d) for d in ax) for ax in pair) for pair in dimension_numbers)
  return _dot_acc32(lhs, rhs, dims, precision, jnp.dtype(out_dtype))


def dot_general_for(dtype: Any) -> Callable | None:
  """`lax.dot_general` with float32 accumulation for 16-bit `dtype`; None (flax's default) else."""
  if not is_low_precision(dtype):
    return None

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    del preferred_element_type
    return dot_acc32(lhs, rhs, dimension_numbers, precision, dtype)

  return dot_general


def conv_as_matmuls(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                    dimension_numbers=None, feature_group_count=1, precision=None,
                    preferred_element_type=None):
  """`lax.conv_general_dilated` (same arguments) for NHWC x HWIO, written as matrix products.

  A kernel whose strides equal its size (ViT patches) is one product of the patch vectors with the
  reshaped kernel; any other kernel is one product too, of the kh * kw strided input slices under
  its taps, concatenated along the channels (im2col: a kh * kw times larger copy of the input),
  with the reshaped kernel. Same numbers as the convolution up to summation order. Dilations,
  feature groups and other layouts go to `lax.conv_general_dilated`.
  Why: XLA:CPU has no fast bf16 convolution, and its bf16 matmuls do (oneDNN with AMX).
  """
  conv = functools.partial(jax.lax.conv_general_dilated, lhs, rhs, window_strides, padding,
                           lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                           dimension_numbers=dimension_numbers,
                           feature_group_count=feature_group_count, precision=precision,
                           preferred_element_type=preferred_element_type)
  nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  if (lhs.ndim != 4 or feature_group_count != 1
      or jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != nhwc
      or any(d not in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))):
    return conv()
  kh, kw, cin, cout = rhs.shape
  sh, sw = window_strides
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
  x = jnp.pad(lhs, ((0, 0), *padding, (0, 0)))
  b, h, w, _ = x.shape
  oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
  if preferred_element_type == jnp.float32 and is_low_precision(lhs.dtype):
    matmul = functools.partial(dot_acc32, dimension_numbers=(((3,), (0,)), ((), ())),
                               precision=precision, out_dtype=jnp.float32)
  else:
    matmul = functools.partial(jax.lax.dot_general, dimension_numbers=(((3,), (0,)), ((), ())),
                               precision=precision, preferred_element_type=preferred_element_type)
  if (sh, sw) == (kh, kw):
    x = x[:, :oh * kh, :ow * kw].reshape(b, oh, kh, ow, kw, cin).transpose(0, 1, 3, 2, 4, 5)
    return matmul(x.reshape(b, oh, ow, kh * kw * cin), rhs.reshape(kh * kw * cin, cout))
  taps = [jax.lax.slice(x, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, cin),
                        (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]
  return matmul(jnp.concatenate(taps, axis=-1), rhs.reshape(kh * kw * cin, cout))


def conv_for(dtype: Any, impl: str = "xla") -> Callable | None:
  """The convolution of `nn.Conv` for `model.conv`: 'xla' (`lax.conv_general_dilated`) or
  'matmul' (`conv_as_matmuls`), accumulating in float32 for a 16-bit `dtype`. None (flax's
  default) for float32 'xla'."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"model.conv={impl!r}: expected one of {CONV_IMPLS}")
  base = jax.lax.conv_general_dilated if impl == "xla" else conv_as_matmuls
  if not is_low_precision(dtype):
    return None if impl == "xla" else base

  def conv(*args, preferred_element_type=None, **kwargs):
    del preferred_element_type
    return base(*args, preferred_element_type=jnp.float32, **kwargs).astype(dtype)

  return conv


def cast_kernels(params: Any, dtype: Any) -> Any:
  """params with every Dense / Conv / attention `kernel` in the 16-bit compute `dtype`, for
  inference; unchanged for float32.

  Each layer casts its float32 kernel to the compute dtype at every call, which in a per-frame
  function is a convert of all the weights per frame (on CPU, a fifth of a bf16 ViT-B forward).
  Cast once, the layers get the very same bf16 kernels and skip the convert. Biases, norms,
  embeddings and gates stay float32, as the layers use them.
  """
  if not is_low_precision(dtype):
    return params

  def cast(path, leaf):
    return leaf.astype(dtype) if getattr(path[-1], "key", None) == "kernel" else leaf
  return jax.tree_util.tree_map_with_path(cast, params)


def Dense(features: int, dtype: Any, name: str | None = None, **kwargs) -> nn.Dense:  # pylint: disable=invalid-name
  """`nn.Dense` under the dtype policy: [..., Din] -> [..., features] of `dtype`."""
  return nn.Dense(features, dtype=dtype, dot_general=dot_general_for(dtype), name=name, **kwargs)


def Conv(features: int, kernel_size, dtype: Any, name: str | None = None, impl: str = "xla",  # pylint: disable=invalid-name
         **kwargs) -> nn.Conv:
  """`nn.Conv` under the dtype policy: [B, H, W, Cin] -> [B, H', W', features] of `dtype`.
  `impl`: `model.conv` (same params either way)."""
  return nn.Conv(features, kernel_size, dtype=dtype, conv_general_dilated=conv_for(dtype, impl),
                 name=name, **kwargs)


def attention_fn(impl: str, dtype: Any = jnp.float32):
  """The attention kernel of `nn.MultiHeadDotProductAttention` for `model.attention`.

  'flax': flax's einsum attention (for 16-bit dtypes: logits and weighted sum accumulate in
  float32, softmax in float32). 'matmul': `attention_as_matmuls`, the same function.
  'xla' / 'cudnn': `jax.nn.dot_product_attention` with that implementation (cudnn: the fused flash-attention
  kernel on NVIDIA GPUs, bf16/fp16 only). q, k, v [B, N, H, Dh] -> [B, N, H, Dh]; the same
  parameters whichever is chosen.
  """
  if impl not in ATTENTION_IMPLS:
    raise ValueError(f"model.attention={impl!r}: expected one of {ATTENTION_IMPLS}")
  if impl == "flax":
    if is_low_precision(dtype):
      return functools.partial(nn.dot_product_attention, force_fp32_for_softmax=True,
                               einsum_dot_general=dot_general_for(dtype))
    return nn.dot_product_attention
  if impl == "matmul":
    return functools.partial(attention_as_matmuls,
                             accumulate=jnp.float32 if is_low_precision(dtype) else None)

  def attention(query, key, value, mask=None):
    return jax.nn.dot_product_attention(query, key, value, mask=mask, implementation=impl)

  return attention


def attention_as_matmuls(query, key, value, mask=None, *, accumulate=None):
  """Softmax attention as two batched matrix products over one merged batch * heads axis.

  q [B, Nq, H, Dh], k/v [B, Nk, H, Dh], mask broadcastable to [B, H, Nq, Nk] (True: attend)
  -> [B, Nq, H, Dh]. Flax's function (queries scaled by Dh^-1/2, masked logits at the dtype's
  minimum); with `accumulate` float32 the logits stay float32 into the softmax (flax rounds them
  to bf16 first). XLA:CPU runs these products 1.3x (batch 1) to 2.5x (batch 8, bf16) faster than
  the einsums over [B, H] with the fused softmax.
  """
  b, nq, h, dh = query.shape
  nk = key.shape[1]

  def heads_first(t):
    return t.transpose(0, 2, 1, 3).reshape(b * h, t.shape[1], dh)

  q = heads_first(query / jnp.sqrt(dh).astype(query.dtype))
  dot = (jax.lax.dot_general if accumulate is None
         else functools.partial(dot_acc32, out_dtype=accumulate))
  logits = dot(q, heads_first(key), (((2,), (2,)), ((0,), (0,))))
  if mask is not None:
    mask = jnp.broadcast_to(mask, (b, h, nq, nk)).reshape(b * h, nq, nk)
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
  weights = jax.nn.softmax(logits, axis=-1).astype(value.dtype)
  out = dot(weights, heads_first(value), (((2,), (1,)), ((0,), (0,)))).astype(value.dtype)
  return out.reshape(b, h, nq, dh).transpose(0, 2, 1, 3)


def Attention(num_heads: int, dtype: Any, name: str | None = None, attention: str = "flax"  # pylint: disable=invalid-name
              ) -> nn.MultiHeadDotProductAttention:
  """`nn.MultiHeadDotProductAttention` under the dtype policy (q/k/v/out projections accumulate
  in float32 for 16-bit dtypes) with the `attention` kernel of `attention_fn`.

  Call as (queries [B, Nq, D], keys_values [B, Nk, D], mask=[B, 1|H, Nq|1, Nk] bool) -> [B, Nq, D].
  """
  dot = dot_general_for(dtype)
  return nn.MultiHeadDotProductAttention(
      num_heads=num_heads, dtype=dtype, attention_fn=attention_fn(attention, dtype),
      qkv_dot_general=dot, out_dot_general=dot, name=name)


class SelfAttention(nn.Module):
  """Multi-head self-attention with the parameter layout of `nn.MultiHeadDotProductAttention`
  (query/key/value kernels [D, H, Dh], out [H, Dh, D]; the weight converters rely on it) that
  also hands back its queries, keys and values, which candidate elimination ranks tokens with and
  a cached template (`model.template_cache`) keeps.

  x [B, N, D] -> (out [B, N, D], q, k, v [B, N, H, Dh]: x's own). Two variants of the same
  parameters, the two halves of the template_cache model's attention:
    prefix: {'k', 'v'} [B, Np, H, Dh], keys and values computed earlier (a cached template's) that
      x's queries attend to before its own: softmax over [prefix; x] keys;
    isolate: the first `isolate` tokens (the template) attend only to each other, the rest to all:
      the block-structured mask, as two attentions rather than a dense mask.
  """

  num_heads: int
  dtype: Any = jnp.float32
  attention: str = "flax"  # see `attention_fn`

  @nn.compact
  def __call__(self, x: jnp.ndarray, prefix: dict[str, jnp.ndarray] | None = None,
               isolate: int = 0):
    d = x.shape[-1]
    if d % self.num_heads:
      raise ValueError(f"width {d} is not divisible by num_heads={self.num_heads}")
    dot = dot_general_for(self.dtype)
    proj = functools.partial(nn.DenseGeneral, features=(self.num_heads, d // self.num_heads),
                             axis=-1, dtype=self.dtype, dot_general=dot)
    q, k, v = (proj(name=name)(x) for name in ("query", "key", "value"))
    attend = attention_fn(self.attention, self.dtype)
    if prefix is not None:
      out = attend(q, jnp.concatenate([prefix["k"].astype(k.dtype), k], axis=1),
                   jnp.concatenate([prefix["v"].astype(v.dtype), v], axis=1))
    elif isolate:
      n = isolate
      out = jnp.concatenate([attend(q[:, :n], k[:, :n], v[:, :n]), attend(q[:, n:], k, v)], axis=1)
    else:
      out = attend(q, k, v)
    out = nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, dot_general=dot, name="out")(out)
    return out, q, k, v
