"""TextEncoder on small random weights: shapes, param names, padding invariance, pooling."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lgtrack_jax.models.text_encoder import TextEncoder, pool

_TINY = dict(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
             max_position_embeddings=32, type_vocab_size=2)


@functools.cache
def _apply_fn(dtype=jnp.float32):
  """Jitted apply, one per model, cached so tests with equal shapes share one compilation.

  Eager init/apply would compile every op separately for each new shape: seconds on a small CPU.
  """
  model = TextEncoder(**_TINY, dtype=dtype)
  return jax.jit(lambda p, i, m: model.apply({"params": p}, i, m))


@pytest.fixture(scope="module")
def params() -> dict:
  """Random float32 params with the init's tree, shared by every test (dtype does not change it).

  Drawn with numpy from `eval_shape(init)`: running init would compile every initializer.
  """
  ids = jnp.zeros((1, 8), jnp.int32)
  shapes = jax.eval_shape(TextEncoder(**_TINY).init, jax.random.PRNGKey(0), ids, ids)["params"]
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: rng.normal(0.0, 0.3, s.shape).astype(np.float32), shapes)


def _padded(tokens: np.ndarray, length: int, pad_ids: np.ndarray) -> tuple[np.ndarray, ...]:
  """tokens [n] -> ids, mask int32 [1, length]; padding slots filled from `pad_ids`."""
  n = len(tokens)
  ids = np.concatenate([tokens, pad_ids[:length - n]])[None].astype(np.int32)
  mask = (np.arange(length) < n)[None].astype(np.int32)
  return ids, mask


def test_output_shape_and_dtype(params):
  ids = jnp.ones((1, 16), jnp.int32)
  out = _apply_fn()(params, ids, jnp.ones_like(ids))
  assert out.shape == (1, 16, 32) and out.dtype == jnp.float32


def test_param_tree_layout_is_the_documented_one(params):
  shapes = {k: v.shape for k, v in traverse_util.flatten_dict(params, sep="/").items()}
  want = {
      "embeddings/word/embedding": (100, 32),
      "embeddings/position/embedding": (32, 32),
      "embeddings/token_type/embedding": (2, 32),
      "embeddings/ln/scale": (32,), "embeddings/ln/bias": (32,),
  }
  for i in range(2):
    for name in ("query", "key", "value", "out"):
      want[f"layer_{i}/attn/{name}/kernel"] = (32, 32)
      want[f"layer_{i}/attn/{name}/bias"] = (32,)
    want[f"layer_{i}/mlp/fc1/kernel"] = (32, 64)
    want[f"layer_{i}/mlp/fc1/bias"] = (64,)
    want[f"layer_{i}/mlp/fc2/kernel"] = (64, 32)
    want[f"layer_{i}/mlp/fc2/bias"] = (32,)
    for ln in ("attn_ln", "mlp_ln"):
      want[f"layer_{i}/{ln}/scale"] = (32,)
      want[f"layer_{i}/{ln}/bias"] = (32,)
  assert shapes == want


def test_padding_does_not_change_real_tokens(params):
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, 100, size=10)
  # Different padding lengths and different (junk) padding ids: neither may leak into real tokens.
  ids16, mask16 = _padded(tokens, 16, np.zeros(16, np.int64))
  ids24, mask24 = _padded(tokens, 24, rng.integers(0, 100, size=24))
  out16 = _apply_fn()(params, ids16, mask16)
  out24 = _apply_fn()(params, ids24, mask24)
  np.testing.assert_allclose(out16[0, :10], out24[0, :10], atol=1e-5, rtol=0)
  # The padding really is there to be ignored: unmasking it changes the real tokens.
  unmasked = _apply_fn()(params, ids24, np.ones_like(mask24))
  assert np.abs(np.asarray(unmasked[0, :10] - out24[0, :10])).max() > 1e-3


def test_too_long_input_is_an_error(params):
  model = TextEncoder(**_TINY, position_offset=2)
  ids = jnp.zeros((1, 31), jnp.int32)
  with pytest.raises(ValueError, match="max_position_embeddings"):
    jax.eval_shape(lambda p: model.apply({"params": p}, ids, ids), params)


def test_bfloat16_compute_stays_finite_with_fully_padded_rows(params):
  ids = jnp.zeros((1, 8), jnp.int32)
  shapes = jax.eval_shape(TextEncoder(**_TINY, dtype=jnp.bfloat16).init, jax.random.PRNGKey(0),
                          ids, ids)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))  # params stay float32
  ids = jnp.ones((2, 8), jnp.int32)
  mask = jnp.array([[1] * 8, [0] * 8], jnp.int32)
  out = _apply_fn(jnp.bfloat16)(params, ids, mask)
  assert out.dtype == jnp.bfloat16
  assert bool(jnp.isfinite(out.astype(jnp.float32)).all())


def test_pool_mean_cls_and_empty_mask():
  tokens = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)
  mask = jnp.array([[1, 1, 0], [0, 0, 0]])
  mean = pool(tokens, mask, "mean")
  np.testing.assert_allclose(mean[0], (tokens[0, 0] + tokens[0, 1]) / 2)
  np.testing.assert_array_equal(mean[1], np.zeros(2))  # all-padding row: zeros, not NaN
  np.testing.assert_array_equal(pool(tokens, mask, "cls"), tokens[:, 0])
  with pytest.raises(ValueError, match="pooling"):
    pool(tokens, mask, "max")
