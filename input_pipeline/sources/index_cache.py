"""On-disk cache of parsed sequences: a dataset root is scanned once, not on every start.

One `.npz` file per (dataset, split) holds every parsed sequence of that split together with a
signature of the files it was parsed from: the sizes and mtimes of its annotation files and of
its frame directory (whose mtime changes when a frame is added, removed or renamed). On the next
start each sequence whose signature still matches is rebuilt from the arrays; any other is parsed
again and the file is rewritten. A file modified less than `TRUST_AFTER_S` seconds before the
scan is never cached: its mtime could still change within the clock's resolution without
changing its size (the "racy" case git also guards against).

Location: `<root>/.lgtrack_index/<dataset>-<split>.npz` next to the data when the root is
writable, otherwise (or when a cache dir is given) `<cache_dir>/<dataset>-<split>-<hash>.npz`,
`cache_dir` defaulting to `$LGTRACK_INDEX_CACHE` or `~/.cache/lgtrack_jax/index`. numpy arrays
and JSON only: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable

import numpy as np
from absl import logging

from input_pipeline.sources.base import Sequence

FORMAT_VERSION = 1
TRUST_AFTER_S = 2.0
LOCAL_DIR = ".lgtrack_index"


def default_cache_dir() -> str:
  """`$LGTRACK_INDEX_CACHE`, else `$XDG_CACHE_HOME/lgtrack_jax/index` (~/.cache by default)."""
  if os.environ.get("LGTRACK_INDEX_CACHE"):
    return os.environ["LGTRACK_INDEX_CACHE"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "lgtrack_jax", "index")


def cache_path(root: str, dataset: str, split: str, cache_dir: str | None = None) -> str:
  """Where the index of (dataset, split) under `root` is cached (see the module docstring)."""
  root = os.path.abspath(root)
  if not cache_dir and os.access(root, os.W_OK):
    return os.path.join(root, LOCAL_DIR, f"{dataset}-{split}.npz")
  digest = hashlib.sha1(root.encode()).hexdigest()[:16]
  return os.path.join(cache_dir or default_cache_dir(), f"{dataset}-{split}-{digest}.npz")


def signature(paths: Iterable[str]) -> tuple[str, float]:
  """(hex digest of every path's size and mtime, newest mtime in seconds since the epoch).

  A missing path is part of the signature too (a sentence file that appears changes it).
  """
  h = hashlib.sha1()
  newest = 0.0
  for p in paths:
    try:
      st = os.stat(p)
    except OSError:
      h.update(f"{p}\0missing\n".encode())
      continue
    h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    newest = max(newest, st.st_mtime)
  return h.hexdigest(), newest


def is_settled(newest_mtime: float, now: float | None = None) -> bool:
  """True when the newest file is old enough for its mtime to be trusted as a cache key."""
  return (time.time() if now is None else now) - newest_mtime >= TRUST_AFTER_S


def _header(root: str, dataset: str, split: str) -> str:
  return json.dumps({"version": FORMAT_VERSION, "root": os.path.abspath(root),
                     "dataset": dataset, "split": split}, sort_keys=True)


def load(path: str, root: str, dataset: str, split: str) -> dict[str, tuple[str, Sequence]]:
  """The cached records {name: (signature, Sequence)}; {} when there is no usable cache file.

  A cache file that cannot be read, or was written for another root, dataset, split or format
  version, is ignored (and overwritten by the next `save`).
  """
  if not os.path.isfile(path):
    return {}
  try:
    with np.load(path, allow_pickle=False) as z:
      if str(z["header"]) != _header(root, dataset, split):
        return {}
      a = {k: z[k] for k in z.files}
  except (OSError, ValueError, KeyError, EOFError) as e:
    logging.warning("ignoring unreadable index cache %s (%s)", path, e)
    return {}
  root = os.path.abspath(root)
  prefix = root + os.sep
  rel = a["frames"].tobytes().decode("utf-8").split("\n") if a["frames"].size else []
  paths = [p if os.path.isabs(p) else prefix + p for p in rel]
  out = {}
  start = 0
  for s, name in enumerate(a["names"].tolist()):
    n = int(a["num_frames"][s])
    stop = start + n
    cover = a["cover"][start:stop] if a["has_cover"][s] else None
    meta = json.loads(str(a["meta"][s])) or None
    seq = Sequence(dataset=dataset, name=name, frames=tuple(paths[start:stop]),
                   gt=a["gt"][start:stop], absent=a["absent"][start:stop],
                   sentence=str(a["sentences"][s]) if a["has_sentence"][s] else None,
                   coord_base=int(a["coord_base"][s]), cover=cover, meta=meta)
    for arr in (seq.gt, seq.absent, seq.cover):
      if arr is not None:
        arr.setflags(write=False)
    out[name] = (str(a["signatures"][s]), seq)
    start = stop
  if start != len(paths) or start != len(a["gt"]):
    logging.warning("ignoring inconsistent index cache %s", path)
    return {}
  return out


def save(path: str, root: str, dataset: str, split: str,
         records: list[tuple[str, Sequence]]) -> bool:
  """Writes the records [(signature, Sequence)] atomically; returns False (logged) on failure."""
  root = os.path.abspath(root)
  prefix = root + os.sep
  seqs = [s for _, s in records]
  rel = [p[len(prefix):] if p.startswith(prefix) else p for s in seqs for p in s.frames]
  if any("\n" in p for p in rel):
    logging.warning("not caching the index of %s: a frame path contains a line break", root)
    return False
  arrays = {
      "header": np.array(_header(root, dataset, split)),
      "names": np.array([s.name for s in seqs], dtype=str),
      "signatures": np.array([sig for sig, _ in records], dtype=str),
      "num_frames": np.array([len(s.frames) for s in seqs], np.int64),
      "frames": np.frombuffer("\n".join(rel).encode("utf-8"), np.uint8),
      "gt": (np.concatenate([s.gt for s in seqs]) if seqs else np.zeros((0, 4))).astype(np.float64),
      "absent": (np.concatenate([s.absent for s in seqs]).astype(bool) if seqs
                 else np.zeros(0, bool)),
      "has_cover": np.array([s.cover is not None for s in seqs], bool),
      "cover": (np.concatenate([np.zeros(len(s.frames), np.int8) if s.cover is None
                                else s.cover for s in seqs]).astype(np.int8)
                if seqs else np.zeros(0, np.int8)),
      "has_sentence": np.array([s.sentence is not None for s in seqs], bool),
      "sentences": np.array([s.sentence or "" for s in seqs], dtype=str),
      "coord_base": np.array([s.coord_base for s in seqs], np.int8),
      "meta": np.array([json.dumps(dict(s.meta or {}), sort_keys=True) for s in seqs], dtype=str),
  }
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(path))
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez_compressed(f, **arrays)
      os.replace(tmp, path)
    except BaseException:
      os.unlink(tmp)
      raise
  except OSError as e:
    logging.warning("could not write the index cache %s (%s); the next start scans again",
                    path, e)
    return False
  return True
