"""`config.model.init`: pretrained sub-trees that replace the fresh init before training.

  model.init.vit      a directory converted with `--kind vit` (MAE / DeiT / timm ViT)
  model.init.tracker  a directory converted with `--kind ostrack` (backbone, posembs, head parts)
  model.init.text     a directory converted with `--kind text`, or a Hugging Face directory
  model.text.checkpoint  Hugging Face directory of the text encoder, used when init.text is ''
The sources must not overlap (one parameter, one source). Their arrays are checked against the
model's params (a position-embedding grid of another size is resampled bicubically; any other
shape difference is an error) and every problem is raised in one ValueError. Loading happens on
the host in numpy; `apply_pretrained` then puts each array with the sharding of the param it
replaces, so nothing is ever materialised unsharded on a device.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from lgtrack_jax.models.text_encoder import TEXT_ENCODER_FIELDS
from lgtrack_jax.weights import checkpoint_io, posemb

# config.model.init key -> the converter kinds it accepts.
SOURCE_KINDS = {"vit": ("vit",), "tracker": ("ostrack",), "text": ("text",)}
# Params whose grid may differ from the converted one: resampled on load.
_GRIDS = ("pos_embed_z/pos_embed", "pos_embed_x/pos_embed")
_INDEX = re.compile(r"(?<=[_.])\d+(?=[/.]|$)")


@dataclasses.dataclass
class InitReport:
  """What the pretrained init did, parameter by parameter.

  sources: {'init.vit': directory, ...} of the sources used.
  loaded: {our path: 'init.vit: <source tensor>'}.
  resampled: {our path: '(gh, gw) -> (nh, nw)'} position grids resampled on load.
  fresh: our paths that keep their fresh init.
  ignored: {source name: {source tensor: reason}} tensors of the original checkpoints left out.
  """

  sources: dict[str, str] = dataclasses.field(default_factory=dict)
  loaded: dict[str, str] = dataclasses.field(default_factory=dict)
  resampled: dict[str, str] = dataclasses.field(default_factory=dict)
  fresh: list[str] = dataclasses.field(default_factory=list)
  ignored: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def lines(self) -> list[str]:
    """A readable summary: every parameter, layer indices collapsed ('blocks_{0-11}/...')."""
    n_ignored = sum(len(v) for v in self.ignored.values())
    out = [(f"pretrained init: {len(self.loaded)} params loaded, {len(self.fresh)} newly "
            f"initialised, {n_ignored} source tensors ignored")]
    for name, where in self.sources.items():
      paths = [p for p, src in self.loaded.items() if src.startswith(name + ":")]
      out.append(f"  loaded from {name}={where} ({len(paths)}):")
      out.extend(f"    {p}" for p in collapse(paths))
    if self.resampled:
      out.append("  position grids resampled on load:")
      out.extend(f"    {p}: {how}" for p, how in sorted(self.resampled.items()))
    out.append(f"  newly initialised ({len(self.fresh)}):")
    out.extend(f"    {p}" for p in collapse(self.fresh))
    for name, keys in self.ignored.items():
      if keys:
        out.append(f"  ignored from {name} ({len(keys)}):")
        by_reason: dict[str, list[str]] = {}
        for key, reason in keys.items():
          by_reason.setdefault(reason, []).append(key)
        for reason, group in sorted(by_reason.items()):
          out.append(f"    {', '.join(collapse(group))}: {reason}")
    return out


def _ranges(values: list[int]) -> str:
  parts, start = [], values[0]
  for a, b in zip(values, values[1:] + [None]):
    if b != a + 1:
      parts.append(str(start) if start == a else f"{start}-{a}")
      start = b
  return ",".join(parts)


def collapse(names: Iterable[str]) -> list[str]:
  """Layer indices and sibling leaves folded, sorted: ['blocks_0/n/scale', 'blocks_1/n/scale',
  'blocks_0/n/bias', 'blocks_1/n/bias', 'norm/scale'] -> ['blocks_{0-1}/n/{bias,scale}',
  'norm/scale']."""
  out, by_parent = [], {}
  for name in _collapse_indices(names):
    parent, _, leaf = name.rpartition("/")
    if parent:
      by_parent.setdefault(parent, []).append(leaf)
    else:
      out.append(name)
  for parent, leaves in by_parent.items():
    leaf = leaves[0] if len(leaves) == 1 else "{" + ",".join(sorted(leaves)) + "}"
    out.append(f"{parent}/{leaf}")
  return sorted(out)


def _collapse_indices(names: Iterable[str]) -> list[str]:
  groups: dict[str, list[tuple[int, ...]]] = {}
  for name in names:
    template = _INDEX.sub("{}", name.replace("{", "{{").replace("}", "}}"))
    groups.setdefault(template, []).append(tuple(int(i) for i in _INDEX.findall(name)))
  out = []
  for template, indices in groups.items():
    if len(indices) == 1:
      out.append(template.format(*indices[0]))
    else:
      out.append(template.format(*(f"{{{_ranges(sorted(set(c)))}}}" for c in zip(*indices))))
  return sorted(out)


def text_fields(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {k: config.model.text[k] for k in TEXT_ENCODER_FIELDS}


def _read_source(name: str, path: str, config: ml_collections.ConfigDict, problems: list[str]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """One source -> ({our path: array}, its conversion report); problems appended, not raised."""
  from lgtrack_jax.weights import hf_text  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(path):
    problems.append(f"{name}={path!r} is not a directory")
    return {}, {}
  if name in ("init.text", "model.text.checkpoint") and not checkpoint_io.is_converted(path):
    # A Hugging Face directory, read directly (`expected` checks the architecture fields).
    return hf_text.convert_text_dir(path, expected=text_fields(config))
  flat, report = checkpoint_io.load_converted(path)
  key = "text" if name == "model.text.checkpoint" else name.split(".")[-1]
  kind = report.get("kind")
  if kind not in SOURCE_KINDS.get(key, ()):
    problems.append(f"{name}={path!r} holds weights converted with --kind {kind}, expected "
                    f"{' or '.join(SOURCE_KINDS[key])}")
  if kind == "text":
    for field, value in report.get("text_config", {}).items():
      if field in TEXT_ENCODER_FIELDS and value != config.model.text[field]:
        problems.append(f"{name}={path!r} was converted from a text encoder with {field}="
                        f"{value!r}, the config has model.text.{field}="
                        f"{config.model.text[field]!r}")
  return flat, report


def load_pretrained(config: ml_collections.ConfigDict, shapes: dict[str, tuple[int, ...]]
                    ) -> tuple[dict[str, np.ndarray], InitReport]:
  """Reads every source of `config.model.init` (and `model.text.checkpoint`) on the host.

  Args:
    config: the experiment config.
    shapes: {our '/'-joined path: shape} of the model's params.

  Returns:
    ({our path: float32 array} to load, the report). Position grids are already resampled.

  Raises:
    ValueError: one error listing every problem of every source: a wrong kind, an unknown
      param, a shape mismatch, a parameter given by two sources, a text architecture field
      that differs from the config.
  """
  init = config.model.init
  sources = [(f"init.{k}", init[k]) for k in ("vit", "tracker", "text") if init[k]]
  if not init.text and config.model.text.checkpoint:
    sources.append(("model.text.checkpoint", config.model.text.checkpoint))
  report = InitReport()
  values: dict[str, np.ndarray] = {}
  problems: list[str] = []
  for name, path in sources:
    try:
      flat, conversion = _read_source(name, path, config, problems)
    except (ValueError, FileNotFoundError) as e:
      problems.append(f"{name}={path!r}: {e}")
      continue
    report.sources[name] = path
    origin = conversion.get("loaded", {})
    report.ignored[name] = dict(conversion.get("ignored", {}))
    for p, array in sorted(flat.items()):
      if p not in shapes:
        problems.append(f"{name}={path!r} holds {p} {tuple(array.shape)}, which the model does "
                        "not have")
        continue
      if p in report.loaded:
        problems.append(f"{p} is given by both {report.loaded[p].split(':')[0]} and {name}")
        continue
      if tuple(array.shape) != shapes[p]:
        if p in _GRIDS and array.ndim == 3 and array.shape[-1] == shapes[p][-1]:
          report.resampled[p] = f"{tuple(array.shape[:2])} -> {tuple(shapes[p][:2])}"
          array = posemb.resample_grid(array, shapes[p][:2])
        else:
          problems.append(f"{name}={path!r}: {p} has shape {tuple(array.shape)}, the model "
                          f"{shapes[p]}")
          continue
      values[p] = np.asarray(array, np.float32)
      report.loaded[p] = f"{name}: {origin.get(p) or p}"
  if problems:
    raise ValueError(f"cannot load pretrained weights ({len(problems)} problems):\n  - "
                     + "\n  - ".join(problems))
  report.fresh = sorted(p for p in shapes if p not in values)
  return values, report


def apply_pretrained(config: ml_collections.ConfigDict, params: Any) -> tuple[Any, InitReport]:
  """Replaces freshly initialised `params` (jax.Arrays, sharded) by the pretrained sources.

  Each loaded array is put with the sharding and dtype of the param it replaces; the others are
  returned as they are. Returns (params as a plain nested dict, report).
  """
  flat = traverse_util.flatten_dict(params, sep="/")
  values, report = load_pretrained(config, {k: tuple(v.shape) for k, v in flat.items()})
  for path, value in values.items():
    old = flat[path]
    flat[path] = jax.device_put(np.asarray(value, old.dtype), old.sharding)
  return traverse_util.unflatten_dict(flat, sep="/"), report


def load_weights(config: ml_collections.ConfigDict, path: str) -> dict[str, Any]:
  """Every param of the model from one converted directory (`convert`'s `--dst`): the weights
  of a released tracker, evaluated without a training workdir (`eval.py --weights`).

  Returns the params as a nested dict of float32 numpy arrays. Position grids of another size
  are resampled, as for `model.init`.

  Raises:
    ValueError: one error naming every param the directory lacks, holds in another shape, or
      holds beyond the model's.
  """
  from lgtrack_jax.weights import vit as vit_lib  # pylint: disable=import-outside-toplevel
  shapes = vit_lib.model_param_shapes(config)
  flat, _ = checkpoint_io.load_converted(path)
  problems = [f"{p} {tuple(a.shape)}: the model has no such param" for p, a in sorted(flat.items())
              if p not in shapes]
  missing = sorted(p for p in shapes if p not in flat)
  if missing:
    problems.append(f"missing {len(missing)} params: {', '.join(collapse(missing))}")
  values = {}
  for p, array in sorted(flat.items()):
    if p not in shapes:
      continue
    if tuple(array.shape) != shapes[p]:
      if p in _GRIDS and array.ndim == 3 and array.shape[-1] == shapes[p][-1]:
        array = posemb.resample_grid(array, shapes[p][:2])
      else:
        problems.append(f"{p} has shape {tuple(array.shape)}, the model {shapes[p]}")
        continue
    values[p] = np.asarray(array, np.float32)
  if problems:
    raise ValueError(f"--weights {path}: the weights do not fit the config "
                     f"({len(problems)} problems):\n  - " + "\n  - ".join(problems))
  return traverse_util.unflatten_dict(values, sep="/")
