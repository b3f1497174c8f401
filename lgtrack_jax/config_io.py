"""Configs as files and as records: load a config file with overrides, hash it, diff two.

A config file is read as `--config` reads it ('configs/x.py' or 'configs/x.py:arg'); `sha256`
is the one hash of a config that training (`<workdir>/config.json`) and evaluation (`run.json`)
record, so either can tell whether it resumes with the config it started with.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from typing import Any, Iterable, Mapping

import ml_collections


def load(path: str, overrides: Mapping[str, Any] | Iterable[str] | None = None
         ) -> ml_collections.ConfigDict:
  """A config file's `get_config(arg)` ('configs/x.py' or 'configs/x.py:arg', as `--config`
  takes it), with `overrides`: {'eval.frame_bucket': 64} or ['eval.frame_bucket=64'] (values of
  strings parsed as the field's type)."""
  file, _, arg = path.partition(":")
  if not os.path.isfile(file):
    raise FileNotFoundError(f"config file {file} does not exist")
  spec = importlib.util.spec_from_file_location(f"_config_{abs(hash(file))}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  items = (overrides.items() if isinstance(overrides, Mapping)
           else (o.split("=", 1) for o in overrides or ()))
  for name, value in items:  # existing fields only: a locked config refuses new ones
    _override(config, name.strip(), value)
  return config


def _override(config: ml_collections.ConfigDict, name: str, value: Any) -> None:
  *parents, leaf = name.split(".")
  node = config
  for p in parents:
    node = getattr(node, p)
  if leaf not in node:
    raise ValueError(f"override {name!r}: the config has no such field")
  if isinstance(value, str):
    current = node[leaf]
    if isinstance(current, bool):
      value = {"true": True, "false": False}.get(value.lower(), value)
    elif isinstance(current, (int, float)) and not isinstance(current, bool):
      value = type(current)(value)
    elif isinstance(current, (tuple, list)) or current is None:
      value = ast.literal_eval(value)
  node[leaf] = value


def to_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON values (tuples become lists, placeholders None)."""
  return json.loads(config.to_json_best_effort())


def sha256(config: ml_collections.ConfigDict | dict) -> str:
  """The config's hash: sha256 of its JSON with sorted keys (training records it in the
  workdir, evaluation in `run.json`, so a resumed run can tell it is the same config)."""
  config_dict = config if isinstance(config, dict) else to_dict(config)
  return hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode()).hexdigest()


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
  """{dotted key: (old, new)} of the leaves that differ; a key missing on one side is absent."""
  missing = "<absent>"
  a, b = flatten(old), flatten(new)
  return {k: (a.get(k, missing), b.get(k, missing)) for k in sorted(set(a) | set(b))
          if a.get(k, missing) != b.get(k, missing)}
