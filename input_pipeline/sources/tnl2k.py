"""Reader for TNL2K (natural-language tracking, 1300 train / 700 test sequences).

On-disk layout (the root may also be a split folder itself):
  <root>/<split folder>/<seq>/imgs/<n>.jpg|png   frames, numbered; one extension per sequence
  <root>/<split folder>/<seq>/groundtruth.txt    one `x,y,w,h` row per frame, 0-BASED pixels
  <root>/<split folder>/<seq>/language.txt       the sentence
where the split folder is `train`/`test`, `TNL2K_train_subset`/`TNL2K_test_subset`, or several
`TNL2K_train_subset*` parts (the train set is distributed in pieces), possibly nested one level.

Quirks: x == 0 and negative x occur and are real boxes; a target is absent only where its row is
`0,0,0,0` (there are no flag files); NaN rows count as absent too. Frames are paired with rows by
frame number, and any gap or count mismatch is a DataError.
"""

from __future__ import annotations

import os

from input_pipeline.sources import parsing
from input_pipeline.sources.base import (DataError, Listing, SeqRef, Sequence, absent_rows,
                                         data_error, freeze)

SPLIT_SIZES = {"train": 1300, "test": 700}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_SPLIT_DIRS = {"train": ("train", "TNL2K_train_subset", "TNL2K_train"),
               "test": ("test", "TNL2K_test_subset", "TNL2K_test")}


def _is_sequence_dir(path: str) -> bool:
  return (os.path.isfile(os.path.join(path, "groundtruth.txt"))
          or os.path.isdir(os.path.join(path, "imgs")))


def _split_dirs(root: str, split: str, dataset: str) -> list[str]:
  """The folders holding the split's sequences: named split folders, else the root itself."""
  entries = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))

  def matching(s: str) -> list[str]:
    # `TNL2K_train_subset_p1`, ...: a folder named like a split folder, or starting with one + "_".
    return [os.path.join(root, e) for e in entries
            if any(e == p or e.startswith(p + "_") for p in _SPLIT_DIRS[s])]

  dirs = matching(split)
  if dirs:
    return dirs
  others = [d for s in _SPLIT_DIRS if s != split for d in matching(s)]
  if others:
    raise data_error(dataset, None, root, f"no folder of split {split!r} (found "
                     f"{[os.path.basename(d) for d in others]}; expected one of "
                     f"{list(_SPLIT_DIRS[split])})")
  return [root]  # the root is a split folder itself


def list_split(root: str, split: str, dataset: str = "tnl2k") -> Listing:
  """Finds the split's sequence folders (no annotation file is read).

  A folder that is neither a sequence nor a part of sequences (e.g. a hidden cache folder) is
  skipped. The split is partial when fewer than its official number of sequences are found.
  """
  if split not in SPLIT_SIZES:
    raise ValueError(f"TNL2K split must be one of {sorted(SPLIT_SIZES)}, got {split!r}")
  if not os.path.isdir(root):
    raise data_error(dataset, None, root, "dataset root is not a directory")
  refs: dict[str, SeqRef] = {}
  for folder in _split_dirs(root, split, dataset):
    for entry in sorted(os.listdir(folder)):
      path = os.path.join(folder, entry)
      if entry.startswith(".") or not os.path.isdir(path):
        continue
      if _is_sequence_dir(path):
        candidates = [path]
      else:  # one level of nesting: a part folder extracted inside its own folder
        candidates = [os.path.join(path, e) for e in sorted(os.listdir(path))
                      if _is_sequence_dir(os.path.join(path, e))]
      for seq_dir in candidates:
        name = os.path.basename(seq_dir)
        if name in refs:
          raise data_error(dataset, name, seq_dir,
                           f"sequence also found at {refs[name].path}")
        seq_dir = os.path.abspath(seq_dir)
        deps = tuple(os.path.join(seq_dir, f) for f in ("groundtruth.txt", "language.txt",
                                                        "imgs"))
        refs[name] = SeqRef(name, seq_dir, deps)
  if not refs:
    raise data_error(dataset, None, root,
                     f"no TNL2K sequence (a folder with imgs/ and groundtruth.txt) for split "
                     f"{split!r}; expected <root>/{_SPLIT_DIRS[split][1]}/<seq>/")
  return Listing(list(refs.values()), expected=SPLIT_SIZES[split])


def read_sequence(seq_dir: str, dataset: str = "tnl2k", *, frames_required: bool = True
                  ) -> Sequence:
  """Reads one TNL2K sequence folder. `frames_required=False`: a missing or incomplete `imgs/`
  gives `frames=()` instead of a DataError (scoring reads only the annotations).

  Returns:
    A `Sequence` with gt [N, 4] float64 as written (0-based, coord_base=0), absent [N] bool
    (`0,0,0,0` or NaN rows) and the sentence of `language.txt`.
  """
  seq_dir = os.path.abspath(seq_dir)
  name = os.path.basename(seq_dir)
  gt_path = os.path.join(seq_dir, "groundtruth.txt")
  gt = parsing.parse_boxes(gt_path, dataset, name, delimiter=",")
  sentence = parsing.parse_sentence(os.path.join(seq_dir, "language.txt"), dataset, name)
  try:
    frames = _frame_paths(seq_dir, len(gt), dataset, name, gt_path)
  except DataError:
    if frames_required:
      raise
    frames = ()
  return freeze(Sequence(dataset=dataset, name=name, frames=frames, gt=gt,
                         absent=absent_rows(gt), sentence=sentence, coord_base=0))


def _frame_paths(seq_dir: str, num_rows: int, dataset: str, name: str, gt_path: str
                 ) -> tuple[str, ...]:
  """The frames of `imgs/` in order; a DataError unless there is one per ground-truth row."""
  img_dir = os.path.join(seq_dir, "imgs")
  names = parsing.numbered_frames(parsing.list_dir(img_dir, dataset, name, "image directory"),
                                  IMAGE_EXTENSIONS, dataset, name, img_dir)
  if len(names) != num_rows:
    raise data_error(dataset, name, gt_path,
                     f"{num_rows} rows but {img_dir} has {len(names)} frames "
                     f"({names[0]}..{names[-1]})")
  return tuple(os.path.join(img_dir, n) for n in names)


def read(ref: SeqRef, dataset: str = "tnl2k", frames_required: bool = True) -> Sequence:
  """Reads the sequence of a `list_split` ref."""
  return read_sequence(ref.path, dataset, frames_required=frames_required)
