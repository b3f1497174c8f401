"""`<workdir>/config.json`: the config a run was started with, checked when it resumes.

The file holds the config as JSON and its sha256 (of the JSON with sorted keys). A resumed run
whose config differs is refused, naming the keys that differ, unless the caller allows the
change (`train.py --allow_config_change`); then the new config is recorded and the change is
appended to `<workdir>/config_changes.jsonl`. Keys that cannot change what is trained (logging
and checkpoint cadence, the profiler, input-pipeline throughput, evaluation) may change freely.
"""

from __future__ import annotations

import json
from typing import Any

from etils import epath

from lgtrack_jax import files
from lgtrack_jax.config_io import differences, sha256
from lgtrack_jax.training.errors import ConfigError

FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"
# Dotted keys (or prefixes ending in '.') a resumed run may change without asking: none of them
# changes a parameter update or the sample stream.
FREE_KEYS = ("train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
             "train.profile_steps", "data.num_parallel_calls", "data.prefetch",
             "data.index_cache", "data.cache_dir", "eval.")
_SHOWN = 5  # differing keys named in an error


def _is_free(key: str) -> bool:
  return any(key == f or (f.endswith(".") and key.startswith(f)) for f in FREE_KEYS)


def describe(diff: dict[str, tuple[Any, Any]], shown: int = _SHOWN) -> str:
  """'a.b: 1 -> 2, c: 'x' -> 'y' (and 3 more)'."""
  parts = [f"{k}: {json.dumps(o)} -> {json.dumps(n)}" for k, (o, n) in list(diff.items())[:shown]]
  more = f" (and {len(diff) - shown} more)" if len(diff) > shown else ""
  return ", ".join(parts) + more


def read(workdir: str) -> dict | None:
  """The recorded {'config': ..., 'sha256': ...}, or None when the workdir has none."""
  path = epath.Path(workdir) / FILE
  if not path.exists():
    return None
  return json.loads(path.read_text())


def write(workdir: str, config_dict: dict) -> None:
  """Records `config_dict` as the run's config (written aside, then renamed over the old one)."""
  files.write_text_atomic(epath.Path(workdir) / FILE, json.dumps(
      {"sha256": sha256(config_dict), "config": config_dict}, indent=1, sort_keys=True) + "\n")


def check_resume(workdir: str, config_dict: dict, step: int,
                 allow_change: bool = False) -> dict[str, tuple[Any, Any]] | None:
  """Compares the config of a run resuming at `step` with the one the workdir recorded.

  Returns the differences to record (None: nothing to write, the record already matches or
  must be created). Raises ConfigError naming up to 5 differing keys (old -> new) when a key
  outside FREE_KEYS differs and `allow_change` is False. A workdir written before config.json
  existed has no record: nothing to compare, the caller records the config.
  """
  record = read(workdir)
  if record is None:
    return None
  if record.get("sha256") == sha256(config_dict):
    return {}
  diff = differences(record["config"], config_dict)
  bound = {k: v for k, v in diff.items() if not _is_free(k)}
  if bound and not allow_change:
    raise ConfigError(
        f"{workdir} resumes at step {step} with a config that differs from the one it was "
        f"started with: {describe(bound)}; rerun with the same config, pass "
        f"--allow_config_change to continue with this one, or start a new workdir")
  return diff


def record_change(workdir: str, step: int, diff: dict[str, tuple[Any, Any]]) -> None:
  """Appends {'step', 'changes': {key: [old, new]}} to config_changes.jsonl."""
  path = epath.Path(workdir) / CHANGES_FILE
  old = path.read_text() if path.exists() else ""
  row = json.dumps({"step": step, "changes": {k: list(v) for k, v in diff.items()}},
                   sort_keys=True)
  path.write_text(old + row + "\n")
