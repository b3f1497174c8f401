"""The training index and the framework-free parts of "sample i = f(seed, i)".

`build_index` flattens the sequences of one source into numpy arrays once (frame paths, boxes,
visibility, tokenised sentences) and `merge` concatenates the indexes of several sources into one
mixture, so that the tf.data pipeline (`pipeline.py`) can draw samples with stateless random
ops and plain gathers: source by ratio, then sequence, then frames. Everything here is numpy +
os, no TensorFlow.

Boxes are x, y, w, h in 0-based continuous pixel coordinates (docs/design.md section 5,
`Sequence.boxes`): a box covers [x, x + w), and image pixel k covers [k, k + 1). How a crop
samples those pixels is defined once, for training and tracking, in `lgtrack_jax/ops/crop.py`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
from absl import logging

from input_pipeline.sources.base import Sequence, data_error

TokenizeFn = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True, eq=False)
class Index:
  """Flat arrays over all sequences of one source (F frames, S sequences, V visible frames).

  Attributes:
    frame_paths: [F] object (str), all frames of all sequences concatenated in temporal order.
    boxes: [F, 4] float32 x, y, w, h, 0-based continuous pixels (`Sequence.boxes`); rows of
      invisible frames are zeroed where the file had NaN and are never sampled.
    visible: [F] bool, target visible with a positive-area box.
    seq_start: [S] int64 flat index of each sequence's first frame.
    seq_len: [S] int64 frames per sequence.
    vis_start: [S] int64 offset of each sequence's slice of `vis_frames`.
    vis_count: [S] int64 length of that slice (>= 2).
    vis_frames: [V] int64 flat indices of the visible frames, grouped by sequence, ascending.
    text_ids: [S, L] int32 token ids (zeros where the sequence has no sentence).
    text_mask: [S, L] int32 attention mask (all zero where the sequence has no sentence).
    seq_names: S sequence names.
    dataset: the dataset name of a single source, or the '+'-joined names of a mixture.
    source_names: K dataset names of the sources (K = 1 for `build_index`).
    source_probs: [K] float64 sampling probability of each source (sums to 1).
    source_seq_start: [K] int64 first sequence of each source; its sequences are contiguous.
    source_seq_count: [K] int64 sequences per source.
    source_grounding: [K] bool, sources of single images whose samples are always language-only
      grounding (mode 1).
  """

  frame_paths: np.ndarray
  boxes: np.ndarray
  visible: np.ndarray
  seq_start: np.ndarray
  seq_len: np.ndarray
  vis_start: np.ndarray
  vis_count: np.ndarray
  vis_frames: np.ndarray
  text_ids: np.ndarray
  text_mask: np.ndarray
  seq_names: list[str]
  dataset: str
  source_names: tuple[str, ...] = ()
  source_probs: np.ndarray | None = None
  source_seq_start: np.ndarray | None = None
  source_seq_count: np.ndarray | None = None
  source_grounding: np.ndarray | None = None

  def __post_init__(self):
    if not self.source_names:  # a single source spanning every sequence
      object.__setattr__(self, "source_names", (self.dataset,))
    k = len(self.source_names)
    defaults = {"source_probs": np.ones(k, np.float64) / k,
                "source_seq_start": np.zeros(k, np.int64),
                "source_seq_count": np.array([self.num_sequences] * k, np.int64),
                "source_grounding": np.zeros(k, bool)}
    for field, value in defaults.items():
      if getattr(self, field) is None:
        if k != 1:
          raise ValueError(f"Index of {k} sources needs {field}")
        object.__setattr__(self, field, value)

  @property
  def num_sequences(self) -> int:
    return len(self.seq_names)

  @property
  def num_sources(self) -> int:
    return len(self.source_names)

  def source_of(self, seq: int) -> int:
    """The source number of sequence `seq`."""
    return int(np.searchsorted(self.source_seq_start, seq, side="right")) - 1

  def dataset_of(self, seq: int) -> str:
    """The dataset name of sequence `seq` (for error messages)."""
    return self.source_names[self.source_of(seq)]

  @property
  def has_sentence(self) -> np.ndarray:
    """[S] bool, True where the sequence has a (non-empty) sentence."""
    return self.text_mask.any(axis=1)

  def locate(self, flat: int) -> tuple[int, int]:
    """Maps a flat frame index to (sequence number, frame number within the sequence)."""
    s = int(np.searchsorted(self.seq_start, flat, side="right")) - 1
    return s, int(flat - self.seq_start[s])


def _visible(seq: Sequence) -> np.ndarray:
  """[N] bool: not marked absent and a finite box of positive area (readers should agree)."""
  b = seq.boxes
  finite = np.isfinite(b).all(axis=1)
  with np.errstate(invalid="ignore"):
    positive = (b[:, 2] > 0) & (b[:, 3] > 0)
  return ~np.asarray(seq.absent, bool) & finite & positive


def _check_frames_exist(seq: Sequence, listings: dict[str, set[str] | None]) -> None:
  """Raises a DataError naming the first missing frame; one `os.listdir` per image directory."""
  for i, path in enumerate(seq.frames):
    d, name = os.path.split(path)
    if d not in listings:
      try:
        listings[d] = set(os.listdir(d or "."))
      except OSError:
        listings[d] = None
    names = listings[d]
    if names is None or name not in names:
      raise data_error(seq.dataset, seq.name, path, "missing frame", frame=i)


def _tokenize(sequences: list[Sequence], tokenize: TokenizeFn,
              max_len: int) -> tuple[np.ndarray, np.ndarray]:
  """Tokenises every sentence once -> ids, mask [S, max_len] int32 (zero rows when none)."""
  ids = np.zeros((len(sequences), max_len), np.int32)
  mask = np.zeros((len(sequences), max_len), np.int32)
  with_text = [k for k, s in enumerate(sequences) if s.sentence is not None]
  for k in with_text:
    if not sequences[k].sentence.strip():
      s = sequences[k]
      raise data_error(s.dataset, s.name, None, "empty sentence")
  if not with_text:
    return ids, mask
  t_ids, t_mask = tokenize([sequences[k].sentence for k in with_text])
  t_ids, t_mask = np.asarray(t_ids), np.asarray(t_mask)
  if t_ids.shape != t_mask.shape or t_ids.ndim != 2 or t_ids.shape[0] != len(with_text):
    raise ValueError(f"tokenize returned ids {t_ids.shape} / mask {t_mask.shape} for "
                     f"{len(with_text)} sentences; want two equal [N, <= {max_len}] arrays")
  if t_ids.shape[1] > max_len:
    raise ValueError(f"tokenize returned length {t_ids.shape[1]} > max_len {max_len}")
  width = t_ids.shape[1]
  ids[with_text, :width] = t_ids
  mask[with_text, :width] = t_mask
  for row, k in enumerate(with_text):
    if not t_mask[row].any():
      s = sequences[k]
      raise data_error(s.dataset, s.name, None, "tokenizer returned an empty sentence")
  return ids, mask


def build_index(sequences: list[Sequence], tokenize: TokenizeFn, max_len: int, *,
                grounding: bool = False) -> Index:
  """Flattens the sequences of one source into an `Index`.

  Video sequences with fewer than 2 visible frames cannot give a template/search pair and are
  dropped (logged); a grounding source (single images) needs 1. Every frame file of every
  sequence must exist.

  Args:
    sequences: sequences of a single dataset (as returned by one reader under `sources/`).
    tokenize: sentences -> (ids, mask), each [N, L'] with L' <= max_len; shorter rows are
      zero-padded here.
    max_len: text length L of the index.
    grounding: the source holds single annotated images (RefCOCOg): its samples are always
      language-only (mode 1), so every sequence needs a sentence.

  Returns:
    The index; text is tokenised once here.

  Raises:
    DataError: a missing frame file, frame/box count mismatch, an empty sentence, or no usable
      sequence at all.
  """
  if not sequences:
    raise ValueError("build_index: no sequences")
  datasets = sorted({s.dataset for s in sequences})
  if len(datasets) != 1:
    raise ValueError(f"build_index takes the sequences of one source, got datasets {datasets}")
  dataset = datasets[0]

  min_visible = 1 if grounding else 2
  listings: dict[str, set[str] | None] = {}
  kept, visibles = [], []
  for seq in sequences:
    if grounding and seq.sentence is None:
      raise data_error(dataset, seq.name, None, "a grounding sample needs a sentence")
    if len(seq.gt) != len(seq.frames) or len(seq.absent) != len(seq.frames):
      raise data_error(dataset, seq.name, None,
                       f"{len(seq.frames)} frames but {len(seq.gt)} boxes and "
                       f"{len(seq.absent)} absence flags")
    _check_frames_exist(seq, listings)
    vis = _visible(seq)
    if vis.sum() >= min_visible:
      kept.append(seq)
      visibles.append(vis)
  dropped = len(sequences) - len(kept)
  if dropped:
    logging.info("%s: dropped %d of %d sequences with fewer than %d visible frames",
                 dataset, dropped, len(sequences), min_visible)
  if not kept:
    raise data_error(dataset, None, None,
                     f"no sequence has {min_visible} or more visible frames")

  seq_len = np.array([len(s) for s in kept], np.int64)
  seq_start = np.concatenate([[0], np.cumsum(seq_len)[:-1]]).astype(np.int64)
  visible = np.concatenate(visibles)
  boxes = np.nan_to_num(np.concatenate([s.boxes for s in kept]).astype(np.float32))
  vis_frames = np.flatnonzero(visible).astype(np.int64)
  vis_count = np.array([v.sum() for v in visibles], np.int64)
  vis_start = np.concatenate([[0], np.cumsum(vis_count)[:-1]]).astype(np.int64)
  frame_paths = np.array([p for s in kept for p in s.frames], dtype=object)
  text_ids, text_mask = _tokenize(kept, tokenize, max_len)
  return Index(frame_paths=frame_paths, boxes=boxes, visible=visible, seq_start=seq_start,
               seq_len=seq_len, vis_start=vis_start, vis_count=vis_count, vis_frames=vis_frames,
               text_ids=text_ids, text_mask=text_mask, seq_names=[s.name for s in kept],
               dataset=dataset, source_grounding=np.array([grounding]))


def merge(parts: list[tuple[Index, float]]) -> Index:
  """Concatenates single-source indexes into one mixture sampled by ratio.

  Args:
    parts: (index of one source, ratio) pairs; ratios are relative weights (> 0), normalised
      here. The order matters: it is the order of the sampling thresholds.

  Returns:
    One `Index` whose sequences are those of the parts, in order, with the source fields set.
  """
  if not parts:
    raise ValueError("merge: no sources")
  ratios = np.array([r for _, r in parts], np.float64)
  if not np.all(np.isfinite(ratios)) or (ratios <= 0).any():
    raise ValueError(f"source ratios must be positive and finite, got {ratios.tolist()}")
  for idx, _ in parts:
    if idx.num_sources != 1:
      raise ValueError("merge takes single-source indexes")
  if len({idx.text_ids.shape[1] for idx, _ in parts}) != 1:
    raise ValueError("merge: the sources were tokenised to different lengths")
  indexes = [idx for idx, _ in parts]
  frames = np.cumsum([0] + [len(i.frame_paths) for i in indexes])
  vis = np.cumsum([0] + [len(i.vis_frames) for i in indexes])
  seqs = np.cumsum([0] + [i.num_sequences for i in indexes])
  return Index(
      frame_paths=np.concatenate([i.frame_paths for i in indexes]),
      boxes=np.concatenate([i.boxes for i in indexes]),
      visible=np.concatenate([i.visible for i in indexes]),
      seq_start=np.concatenate([i.seq_start + frames[k] for k, i in enumerate(indexes)]),
      seq_len=np.concatenate([i.seq_len for i in indexes]),
      vis_start=np.concatenate([i.vis_start + vis[k] for k, i in enumerate(indexes)]),
      vis_count=np.concatenate([i.vis_count for i in indexes]),
      vis_frames=np.concatenate([i.vis_frames + frames[k] for k, i in enumerate(indexes)]),
      text_ids=np.concatenate([i.text_ids for i in indexes]),
      text_mask=np.concatenate([i.text_mask for i in indexes]),
      seq_names=[n for i in indexes for n in i.seq_names],
      dataset="+".join(i.dataset for i in indexes),
      source_names=tuple(i.dataset for i in indexes),
      source_probs=ratios / ratios.sum(),
      source_seq_start=seqs[:-1].astype(np.int64),
      source_seq_count=np.diff(seqs).astype(np.int64),
      source_grounding=np.concatenate([i.source_grounding for i in indexes]))


def host_sample_indices(step: int, process_index: int, process_count: int,
                        local_batch: int) -> np.ndarray:
  """[local_batch] int64 global sample indices host `process_index` takes at `step`.

  Step s covers exactly samples [s * G, (s + 1) * G) with G = local_batch * process_count,
  whatever the host count, so a run resumes exactly and re-shards freely.
  """
  g = local_batch * process_count
  return step * g + process_index + process_count * np.arange(local_batch, dtype=np.int64)
