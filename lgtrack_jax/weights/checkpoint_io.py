"""Reading foreign checkpoints as numpy state dicts, and writing / reading converted sub-trees.

Foreign files: `*.safetensors` (read with `safetensors.numpy`), or PyTorch pickles (`.pth`, `.pt`,
`.bin`, `.pth.tar`, `.tar`) read with `torch.load(weights_only=True)`, torch's restricted
unpickler that refuses arbitrary Python objects; torch is imported only on that path. Nothing is
ever read with plain `pickle`.

Converted sub-trees (what `python -m lgtrack_jax.weights.convert` writes) are a directory with
  params.safetensors   float32 arrays keyed by our '/'-joined param path (e.g. 'blocks_0/norm1/scale'),
  report.json          kind, source, what was loaded from which tensor, what was ignored and why.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterable
from typing import Any

import ml_dtypes  # noqa: F401  # registers bfloat16 with numpy, so safetensors.numpy reads BF16
import numpy as np
import safetensors.numpy

PARAMS_FILE = "params.safetensors"
REPORT_FILE = "report.json"
FORMAT = "lgtrack_jax.converted/1"

# Checkpoints often nest the state dict one level down: MAE/DeiT {'model': ...}, Lightning and
# mmcv {'state_dict': ...}, pytracking/OSTrack {'net': ...}.
WRAPPER_KEYS = ("model", "state_dict", "net", "module")


def _torch():
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading a PyTorch checkpoint needs torch, which is not installed; "
                      "install torch (CPU build is enough) or convert the file to safetensors") from e
  return torch


def torch_load(path: str) -> Any:
  """`torch.load(path, weights_only=True)` on the CPU, with a useful error for pickled objects.

  A training checkpoint may pickle Python objects besides the tensors (OSTrack keeps its
  `settings` and `stats`, MAE its argparse `args`); the restricted unpickler refuses them, and so
  do we: the error names the objects and says how to keep only the weights.
  """
  torch = _torch()
  try:
    # weights_only=True: torch's restricted unpickler, which refuses arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    what = [line.strip() for line in str(e).splitlines() if "Unsupported global" in line]
    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if find is not None:
      try:
        what = find(path)
      except (pickle.UnpicklingError, RuntimeError, ValueError):
        pass
    if not what:  # not a refused object: a damaged or foreign file
      raise ValueError(f"cannot read {path} as a PyTorch checkpoint: {e}") from e
    raise ValueError(
        f"{path} pickles Python objects besides tensors ({what}), which are not loaded from "
        "untrusted files. If you trust the file, keep only its weights once: python -c \"import "
        "torch; c = torch.load(SRC, weights_only=False); torch.save(c['net'] if 'net' in c else "
        "c['model'], DST)\" (or save them as safetensors), and convert that") from e


def _to_numpy(value: Any) -> np.ndarray:
  value = value.detach().cpu()
  # numpy has no bfloat16 view of a torch tensor: go through float32.
  return (value.float() if value.is_floating_point() else value).numpy()


def unwrap(state: Any, path: str, wrappers: Iterable[str] = WRAPPER_KEYS) -> dict[str, Any]:
  """The state dict inside a checkpoint: descends through `wrappers` keys, strips 'module.'.

  A dict that holds tensors at the top level is taken as is. Raises ValueError naming the
  top-level keys when no state dict is found.
  """
  wrappers = tuple(wrappers)
  while isinstance(state, dict):
    if any(hasattr(v, "shape") for v in state.values()):
      break
    inner = next((state[k] for k in wrappers if isinstance(state.get(k), dict)), None)
    if inner is None:
      raise ValueError(f"{path}: no state dict found; top-level keys {sorted(map(str, state))}, "
                       f"expected tensors or one of {list(wrappers)}")
    state = inner
  if not isinstance(state, dict):
    raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
  # DistributedDataParallel saves every key under 'module.'.
  if state and all(str(k).startswith("module.") for k in state):
    state = {str(k)[len("module."):]: v for k, v in state.items()}
  return state


def read_state_dict(path: str, wrappers: Iterable[str] = WRAPPER_KEYS) -> dict[str, np.ndarray]:
  """A checkpoint file -> {source key: numpy array} (non-tensor entries dropped).

  Args:
    path: `*.safetensors`, or a PyTorch file (`.pth`, `.pt`, `.bin`, `.pth.tar`, `.tar`).
    wrappers: keys under which the state dict may be nested (see `WRAPPER_KEYS`).

  Raises:
    FileNotFoundError: no such file.
    ImportError: a PyTorch file and no torch.
    ValueError: the file pickles objects besides tensors, or holds no state dict.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"checkpoint file {path!r} does not exist")
  if path.endswith(".safetensors"):
    return dict(safetensors.numpy.load_file(path))
  state = unwrap(torch_load(path), path, wrappers)
  torch = _torch()
  return {str(k): _to_numpy(v) for k, v in state.items() if isinstance(v, torch.Tensor)}


def torch_load_tensors(paths: list[str]) -> dict[str, np.ndarray]:
  """Several PyTorch state-dict files (e.g. sharded `pytorch_model-0000x.bin`) -> one dict."""
  torch = _torch()
  tensors: dict[str, np.ndarray] = {}
  for path in paths:
    state = torch_load(path)
    if not isinstance(state, dict):
      raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    for key, value in state.items():
      if not isinstance(value, torch.Tensor):
        continue
      if key in tensors:
        raise ValueError(f"tensor {key!r} appears in more than one file of {paths}")
      tensors[key] = _to_numpy(value)
  return tensors


def save_converted(dst: str, flat: dict[str, np.ndarray], report: dict[str, Any]) -> None:
  """Writes `dst/params.safetensors` ({our path: float32 array}) and `dst/report.json`."""
  os.makedirs(dst, exist_ok=True)
  arrays = {k: np.ascontiguousarray(v, np.float32) for k, v in sorted(flat.items())}
  safetensors.numpy.save_file(arrays, os.path.join(dst, PARAMS_FILE),
                              metadata={"format": FORMAT, "kind": str(report.get("kind", ""))})
  with open(os.path.join(dst, REPORT_FILE), "w", encoding="utf-8") as f:
    json.dump({"format": FORMAT, **report}, f, indent=1, sort_keys=True)
    f.write("\n")


def is_converted(path: str) -> bool:
  return os.path.isfile(os.path.join(path, PARAMS_FILE))


def load_converted(src: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """A directory written by `save_converted` -> ({our path: float32 array}, report dict)."""
  params_path = os.path.join(src, PARAMS_FILE)
  if not os.path.isfile(params_path):
    raise FileNotFoundError(f"{src!r} is not a converted weights directory (no {PARAMS_FILE}); "
                            "write one with `python -m lgtrack_jax.weights.convert`")
  report: dict[str, Any] = {}
  report_path = os.path.join(src, REPORT_FILE)
  if os.path.isfile(report_path):
    with open(report_path, encoding="utf-8") as f:
      report = json.load(f)
  return dict(safetensors.numpy.load_file(params_path)), report
