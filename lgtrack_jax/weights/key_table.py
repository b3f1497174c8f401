"""Regex key tables: foreign state dict -> our flat params, with per-key transforms and shape checks.

A table is an ordered tuple of `Rule`s; the first rule whose pattern matches the whole source key
wins. A rule names one or more of our '/'-joined param paths (regex replacement templates: `\\1`
is the first group) and a transform from the source array to one array per path (e.g. a fused
qkv weight -> query, key, value kernels). Keys that match an ignore pattern are skipped on
purpose and reported with the reason. Every problem is collected; the caller raises them at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import numpy as np

# source array, converter context -> one array per target path.
Transform = Callable[[np.ndarray, Any], "np.ndarray | tuple[np.ndarray, ...]"]


@dataclasses.dataclass(frozen=True)
class Rule:
  """`pattern` (full match over the source key) -> `targets` (our paths) via `transform`.

  best_effort: the source has no guaranteed counterpart (e.g. OSTrack's head on ours): a missing
    target or a shape mismatch is reported as unmatched instead of being an error.
  """

  pattern: str
  targets: tuple[str, ...]
  transform: Transform
  best_effort: bool = False


def same(x: np.ndarray, ctx: Any = None) -> np.ndarray:  # pylint: disable=unused-argument
  return x


def linear_kernel(x: np.ndarray, ctx: Any = None) -> np.ndarray:  # pylint: disable=unused-argument
  """torch.nn.Linear weight [out, in] -> flax Dense kernel [in, out]."""
  return x.T


def conv_kernel(x: np.ndarray, ctx: Any = None) -> np.ndarray:  # pylint: disable=unused-argument
  """torch Conv2d weight [out, in, kh, kw] -> flax Conv kernel [kh, kw, in, out]."""
  if x.ndim != 4:
    raise ValueError(f"a conv weight has 4 dimensions, this one {tuple(x.shape)}")
  return x.transpose(2, 3, 1, 0)


@dataclasses.dataclass
class Conversion:
  """Result of `apply_table`.

  params: {our path: float32 array} of everything loaded.
  loaded: {our path: source key}.
  ignored: {source key: reason} for keys skipped on purpose or without a counterpart.
  folded: {source key: where it went} for keys folded into a loaded param (a BatchNorm).
  problems: every error found (empty when the conversion is sound).
  """

  params: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  loaded: dict[str, str] = dataclasses.field(default_factory=dict)
  ignored: dict[str, str] = dataclasses.field(default_factory=dict)
  folded: dict[str, str] = dataclasses.field(default_factory=dict)
  problems: list[str] = dataclasses.field(default_factory=list)

  def raise_if_problems(self, what: str) -> None:
    if self.problems:
      raise ValueError(f"cannot convert {what} ({len(self.problems)} problems):\n  - "
                       + "\n  - ".join(self.problems))


def _shape(x: Any) -> tuple[int, ...]:
  return tuple(int(d) for d in np.shape(x))


def apply_table(tensors: dict[str, np.ndarray], rules: tuple[Rule, ...],
                ignored: tuple[tuple[str, str], ...], expected: dict[str, tuple[int, ...]],
                required: str, ctx: Any = None) -> Conversion:
  """Maps `tensors` through `rules`; checks shapes against `expected`.

  Args:
    tensors: {source key: array} (torch layout).
    rules: ordered rules; the first full match wins.
    ignored: (pattern, reason): source keys skipped on purpose, checked before the rules.
    expected: {our path: shape} of the whole model (from `jax.eval_shape` of its init).
    required: regex (full match) over our paths that the source must provide; each such path
      left unloaded is a 'missing tensor' problem.
    ctx: passed to every transform (sizes, grids, head counts).

  Returns:
    A `Conversion`; arrays are float32. Nothing is raised here: see `Conversion.problems`.
  """
  out = Conversion()
  compiled_rules = [(re.compile(r.pattern), r) for r in rules]
  compiled_ignored = [(re.compile(p), reason) for p, reason in ignored]
  attempted: set[str] = set()  # targets that got a problem already: not also 'missing'
  for key in sorted(tensors):
    value = tensors[key]
    reason = next((why for p, why in compiled_ignored if p.fullmatch(key)), None)
    if reason is not None:
      out.ignored[key] = reason
      continue
    match, rule = next(((m, r) for p, r in compiled_rules if (m := p.fullmatch(key))),
                       (None, None))
    if rule is None:
      out.problems.append(f"unrecognised tensor {key} {_shape(value)}")
      continue
    targets = [match.expand(t) for t in rule.targets]
    try:
      arrays = rule.transform(np.asarray(value), ctx)
    except ValueError as e:
      if rule.best_effort:
        out.ignored[key] = f"no counterpart: {e}"
      else:
        out.problems.append(f"cannot convert {key} {_shape(value)} -> {', '.join(targets)}: {e}")
        attempted.update(targets)
      continue
    if not isinstance(arrays, tuple):
      arrays = (arrays,)
    if len(arrays) != len(targets):
      raise AssertionError(f"rule {rule.pattern!r} gave {len(arrays)} arrays for {targets}")
    unmatched = []
    for path, array in zip(targets, arrays):
      if path not in expected:
        unmatched.append(f"tensor {key} maps to {path}, which this model does not have")
      elif _shape(array) != expected[path]:
        unmatched.append(f"shape mismatch: {key} -> {path}: expected {expected[path]}, found "
                         f"{_shape(array)} (source shape {_shape(value)})")
      elif path in out.loaded:
        unmatched.append(f"tensors {out.loaded[path]} and {key} both map to {path}")
    if unmatched:
      if rule.best_effort:
        out.ignored[key] = "no counterpart: " + "; ".join(unmatched)
      else:
        out.problems.extend(unmatched)
        attempted.update(targets)
      continue
    for path, array in zip(targets, arrays):
      out.params[path] = np.asarray(array, np.float32)
      out.loaded[path] = key
  required_re = re.compile(required)
  for path in sorted(p for p in expected if required_re.fullmatch(p)):
    if path not in out.loaded and path not in attempted:
      out.problems.append(f"missing tensor for {path} {expected[path]}")
  return out
