"""Sentences -> fixed-length token ids and mask, with a local Hugging Face tokenizer.

Only local directories are read (`local_files_only=True`, no remote code). The tokenizer pads on
the right, which `TextEncoder`'s position ids assume.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


class Tokenizer:
  """Wraps `transformers.AutoTokenizer` to give numpy int32 arrays of a fixed length."""

  def __init__(self, path: str, max_len: int):
    """Loads the tokenizer files (tokenizer.json or vocab.txt, tokenizer_config.json) in `path`.

    Args:
      path: local directory, e.g. the text checkpoint directory.
      max_len: token length L every sentence is truncated / padded to, special tokens included.
    """
    if not path or not os.path.isdir(path):
      raise FileNotFoundError(f"tokenizer directory {path!r} does not exist")
    if not os.listdir(path):
      raise FileNotFoundError(f"tokenizer directory {path!r} is empty")
    # Imported here: transformers is slow to import and only this class needs it.
    import transformers  # pylint: disable=import-outside-toplevel
    try:
      self._tok = transformers.AutoTokenizer.from_pretrained(
          path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot load a tokenizer from {path!r}: {e}") from e
    if self._tok.pad_token_id is None:
      raise ValueError(f"the tokenizer in {path!r} has no padding token")
    # Some tokenizer configs ask for left padding; TextEncoder's position ids assume right.
    self._tok.padding_side = "right"
    specials = self._tok.num_special_tokens_to_add(pair=False)
    if max_len <= specials:
      raise ValueError(f"max_len {max_len} leaves no room for a word next to the {specials} "
                       "special tokens")
    self.path = path
    self.max_len = max_len

  @property
  def vocab_size(self) -> int:
    """Number of token ids (including added tokens); the encoder's vocab_size must cover it."""
    return len(self._tok)

  def __call__(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenises N sentences.

    Args:
      sentences: N non-empty strings.

    Returns:
      ids: int32 [N, max_len], right-padded with the pad id, truncated to max_len (the final
        special token, e.g. [SEP], is kept).
      mask: int32 [N, max_len], 1 on real tokens (special tokens included), 0 on padding.

    Raises:
      ValueError: a sentence is empty or whitespace only (the message names its index).
      TypeError: `sentences` is a single string or holds a non-string.
    """
    if isinstance(sentences, str):
      raise TypeError("Tokenizer expects a sequence of sentences, not one string")
    sentences = list(sentences)
    for i, s in enumerate(sentences):
      if not isinstance(s, str):
        raise TypeError(f"sentence {i} is a {type(s).__name__}, not a str")
      if not s.strip():
        raise ValueError(f"sentence {i} is empty or whitespace only: {s!r}")
    if not sentences:
      empty = np.zeros((0, self.max_len), np.int32)
      return empty, empty.copy()
    enc = self._tok(sentences, padding="max_length", truncation=True, max_length=self.max_len,
                    return_attention_mask=True, return_token_type_ids=False,
                    return_tensors="np")
    return enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
