"""Hugging Face BERT / RoBERTa / MiniLM checkpoint directory -> `TextEncoder` params.

A directory holds `config.json` and weights: `*.safetensors` (preferred, read with
`safetensors.numpy`) or `pytorch_model*.bin` (read with `torch.load(weights_only=True)`; torch is
imported only then). Nothing is fetched and nothing is unpickled beyond torch's restricted loader.

Source keys are matched against `KEY_TABLE` (regex -> our param path, with a transform); an
optional `bert.` / `roberta.` prefix is accepted, so BERT pretraining checkpoints, RoBERTa and
sentence-transformers (no prefix) all load. Heads and buffers in `IGNORED_KEYS` are skipped on
purpose. Every problem (missing tensor, bad shape, unrecognised tensor, config disagreement) is
collected and reported in one `ValueError`.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_dtypes  # noqa: F401  # registers bfloat16 with numpy, so safetensors.numpy reads BF16
import numpy as np
import safetensors.numpy
from flax import traverse_util

from lgtrack_jax.models.text_encoder import TEXT_ENCODER_FIELDS, TextEncoder
from lgtrack_jax.weights import checkpoint_io

# The TextEncoder fields that a checkpoint's config.json decides (`dtype` is the caller's choice).
TEXT_CONFIG_FIELDS = TEXT_ENCODER_FIELDS

# model_type -> does it count positions from pad_token_id + 1 (RoBERTa's convention)?
_MODEL_TYPES = {"bert": False, "roberta": True, "xlm-roberta": True}

_PREFIX = r"^(?:bert\.|roberta\.)?"
_L = r"encoder\.layer\.(\d+)\."
_LN_SCALE = r"LayerNorm\.(?:weight|gamma)$"  # gamma/beta: TF-converted BERT checkpoints
_LN_BIAS = r"LayerNorm\.(?:bias|beta)$"


def _same(x: np.ndarray) -> np.ndarray:
  return x


def _linear_kernel(x: np.ndarray) -> np.ndarray:
  # torch.nn.Linear stores [out, in]; flax Dense wants [in, out].
  return x.T


# (source key regex, our param path (regex replacement), transform). Ordered; first match wins.
KEY_TABLE: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray]], ...] = (
    (r"embeddings\.word_embeddings\.weight$", "embeddings/word/embedding", _same),
    (r"embeddings\.position_embeddings\.weight$", "embeddings/position/embedding", _same),
    (r"embeddings\.token_type_embeddings\.weight$", "embeddings/token_type/embedding", _same),
    (r"embeddings\." + _LN_SCALE, "embeddings/ln/scale", _same),
    (r"embeddings\." + _LN_BIAS, "embeddings/ln/bias", _same),
    (_L + r"attention\.self\.(query|key|value)\.weight$", r"layer_\1/attn/\2/kernel",
     _linear_kernel),
    (_L + r"attention\.self\.(query|key|value)\.bias$", r"layer_\1/attn/\2/bias", _same),
    (_L + r"attention\.output\.dense\.weight$", r"layer_\1/attn/out/kernel", _linear_kernel),
    (_L + r"attention\.output\.dense\.bias$", r"layer_\1/attn/out/bias", _same),
    (_L + r"attention\.output\." + _LN_SCALE, r"layer_\1/attn_ln/scale", _same),
    (_L + r"attention\.output\." + _LN_BIAS, r"layer_\1/attn_ln/bias", _same),
    (_L + r"intermediate\.dense\.weight$", r"layer_\1/mlp/fc1/kernel", _linear_kernel),
    (_L + r"intermediate\.dense\.bias$", r"layer_\1/mlp/fc1/bias", _same),
    (_L + r"output\.dense\.weight$", r"layer_\1/mlp/fc2/kernel", _linear_kernel),
    (_L + r"output\.dense\.bias$", r"layer_\1/mlp/fc2/bias", _same),
    (_L + r"output\." + _LN_SCALE, r"layer_\1/mlp_ln/scale", _same),
    (_L + r"output\." + _LN_BIAS, r"layer_\1/mlp_ln/bias", _same),
)

# Present in common checkpoints but not part of the encoder: skipped without complaint.
IGNORED_KEYS: tuple[str, ...] = (
    _PREFIX + r"pooler\.",  # BERT pooler (tanh dense on [CLS]); we pool ourselves
    _PREFIX + r"embeddings\.position_ids$",  # buffer: arange(max_position_embeddings)
    _PREFIX + r"embeddings\.token_type_ids$",  # buffer: zeros
    r"^cls\.",  # BERT masked-LM / next-sentence heads
    r"^lm_head\.",  # RoBERTa masked-LM head
)

_COMPILED_TABLE = tuple((re.compile(_PREFIX + pat), dst, fn) for pat, dst, fn in KEY_TABLE)
_COMPILED_IGNORED = tuple(re.compile(p) for p in IGNORED_KEYS)


def _read_hf_config(ckpt_dir: str) -> dict[str, Any]:
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(f"text checkpoint directory {ckpt_dir!r} does not exist")
  path = os.path.join(ckpt_dir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no config.json in text checkpoint directory {ckpt_dir!r}")
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}") from e


def text_config_from_hf(ckpt_dir: str) -> dict[str, Any]:
  """Reads the `TextEncoder` fields (`TEXT_CONFIG_FIELDS`) from `ckpt_dir/config.json`.

  Supports model_type bert (MiniLM is a bert), roberta and xlm-roberta; for the RoBERTa family
  `position_offset = pad_token_id + 1`. Raises FileNotFoundError naming the directory when it or
  its config.json is missing, and one ValueError listing every unsupported setting.
  """
  hf = _read_hf_config(ckpt_dir)
  problems = []
  model_type = hf.get("model_type")
  if model_type not in _MODEL_TYPES:
    problems.append(f"model_type {model_type!r} is not one of {sorted(_MODEL_TYPES)}")
  # Other activations (gelu_new = tanh approximation, relu, ...) would silently shift outputs.
  if hf.get("hidden_act", "gelu") != "gelu":
    problems.append(f"hidden_act {hf['hidden_act']!r} is not supported (only exact 'gelu')")
  if hf.get("position_embedding_type", "absolute") != "absolute":
    problems.append(f"position_embedding_type {hf['position_embedding_type']!r} is not "
                    "supported (only 'absolute')")
  required = {"vocab_size": "vocab_size", "hidden_size": "hidden_size",
              "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
              "intermediate_size": "intermediate_size"}
  missing = [hf_key for hf_key in required.values() if hf_key not in hf]
  if missing:
    problems.append(f"config.json lacks {missing}")
  if problems:
    raise ValueError(f"unsupported text checkpoint {ckpt_dir!r}:\n  - " + "\n  - ".join(problems))

  cfg: dict[str, Any] = {ours: int(hf[theirs]) for ours, theirs in required.items()}
  # Defaults are Hugging Face's BertConfig / RobertaConfig defaults.
  cfg["max_position_embeddings"] = int(hf.get("max_position_embeddings", 512))
  cfg["type_vocab_size"] = int(hf.get("type_vocab_size", 2))
  cfg["layer_norm_eps"] = float(hf.get("layer_norm_eps", 1e-12))
  if _MODEL_TYPES[model_type]:
    cfg["position_offset"] = int(hf.get("pad_token_id", 1)) + 1
  else:
    cfg["position_offset"] = 0
  return cfg


def _load_safetensors(paths: list[str]) -> dict[str, np.ndarray]:
  tensors: dict[str, np.ndarray] = {}
  for path in paths:
    for key, value in safetensors.numpy.load_file(path).items():
      if key in tensors:
        raise ValueError(f"tensor {key!r} appears in more than one file of {paths}")
      tensors[key] = value
  return tensors


def _load_tensors(ckpt_dir: str) -> dict[str, np.ndarray]:
  safetensor_files = sorted(glob.glob(os.path.join(ckpt_dir, "*.safetensors")))
  if safetensor_files:
    return _load_safetensors(safetensor_files)
  # Only `pytorch_model*.bin`: a directory may also hold e.g. `training_args.bin`.
  bin_files = sorted(glob.glob(os.path.join(ckpt_dir, "pytorch_model*.bin")))
  if bin_files:
    return checkpoint_io.torch_load_tensors(bin_files)
  raise FileNotFoundError(f"no weights (*.safetensors or pytorch_model*.bin) in text "
                          f"checkpoint directory {ckpt_dir!r}")


def expected_param_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
  """`{"layer_0/attn/query/kernel": (H, H), ...}` for a TextEncoder with fields `cfg`."""
  model = TextEncoder(**cfg)
  ids = jnp.zeros((1, 1), jnp.int32)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), ids, ids)["params"]
  flat = traverse_util.flatten_dict(shapes, sep="/")
  return {path: tuple(s.shape) for path, s in flat.items()}


def _values_differ(a: Any, b: Any) -> bool:
  if isinstance(a, float) or isinstance(b, float):
    return not math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=0.0)
  return a != b


def load_hf_text_params(ckpt_dir: str, expected: dict[str, Any] | None = None) -> dict:
  """Loads a Hugging Face BERT/RoBERTa/MiniLM directory as `TextEncoder` params.

  See `load_hf_text`, which also says which tensors were skipped.
  """
  return load_hf_text(ckpt_dir, expected)[0]


def load_hf_text(ckpt_dir: str, expected: dict[str, Any] | None = None
                 ) -> tuple[dict, dict[str, str], dict[str, str]]:
  """Loads a Hugging Face BERT/RoBERTa/MiniLM directory as `TextEncoder` params.

  Args:
    ckpt_dir: local directory with config.json and *.safetensors (or pytorch_model*.bin).
    expected: optional TextEncoder fields (a subset of `TEXT_CONFIG_FIELDS`) that the
      checkpoint must have, e.g. the values in the run's config; any disagreement is an error.

  Returns:
    (params, loaded, ignored): the params tree (the inner dict, not wrapped in {"params": ...})
    of float32 numpy arrays, laid out as documented in `lgtrack_jax.models.text_encoder`;
    {our '/'-joined path: source key}; {source key: reason} of the tensors skipped on purpose
    (`IGNORED_KEYS`).

  Raises:
    FileNotFoundError: the directory, its config.json or its weights are missing.
    ValueError: one error listing every missing tensor, bad shape (expected vs found),
      unrecognised tensor and `expected` field that disagrees with config.json.
  """
  cfg = text_config_from_hf(ckpt_dir)
  problems = []
  for field, value in (expected or {}).items():
    if field not in cfg:
      problems.append(f"expected field {field!r} is not one of {TEXT_CONFIG_FIELDS}")
    elif _values_differ(value, cfg[field]):
      problems.append(f"config mismatch: {field} expected {value!r}, config.json gives "
                      f"{cfg[field]!r}")

  shapes = expected_param_shapes(cfg)
  flat: dict[str, np.ndarray] = {}
  sources: dict[str, str] = {}
  ignored: dict[str, str] = {}
  for key, value in sorted(_load_tensors(ckpt_dir).items()):
    if any(p.search(key) for p in _COMPILED_IGNORED):
      ignored[key] = "not part of the encoder (pooler, pretraining heads, buffers)"
      continue
    for pattern, dst, transform in _COMPILED_TABLE:
      match = pattern.search(key)
      if match:
        break
    else:
      problems.append(f"unrecognised tensor {key} {tuple(value.shape)}")
      continue
    path = match.expand(dst)
    if path not in shapes:
      # e.g. encoder.layer.6.* in a checkpoint whose config says 6 layers.
      problems.append(f"tensor {key} maps to {path}, which a TextEncoder with this config "
                      "does not have")
      continue
    if path in sources:
      problems.append(f"tensors {sources[path]} and {key} both map to {path}")
      continue
    sources[path] = key
    array = np.asarray(transform(value), dtype=np.float32)
    if tuple(array.shape) != shapes[path]:
      problems.append(f"shape mismatch: {key} -> {path}: expected {shapes[path]}, found "
                      f"{tuple(array.shape)} (source shape {tuple(value.shape)})")
      continue
    flat[path] = array
  for path in sorted(set(shapes) - set(sources)):
    problems.append(f"missing tensor for {path} {shapes[path]}")

  if problems:
    raise ValueError(f"cannot load text weights from {ckpt_dir!r} ({len(problems)} problems):"
                     "\n  - " + "\n  - ".join(problems))
  return traverse_util.unflatten_dict(flat, sep="/"), sources, ignored


def convert_text_dir(ckpt_dir: str, expected: dict[str, Any] | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """A Hugging Face directory -> ({'text_encoder/...' path: float32 array}, report dict).

  `expected`: TextEncoder fields the checkpoint must have (e.g. the run's `model.text`). The
  report records the checkpoint's fields (`text_config`), which loading checks against the run's.
  """
  params, sources, ignored = load_hf_text(ckpt_dir, expected)
  flat = {f"text_encoder/{k}": v for k, v in traverse_util.flatten_dict(params, sep="/").items()}
  loaded = {f"text_encoder/{k}": v for k, v in sources.items()}
  report = {"kind": "text", "source": os.path.abspath(ckpt_dir),
            "text_config": text_config_from_hf(ckpt_dir), "loaded": loaded, "ignored": ignored,
            "not_loaded": []}
  return flat, report
