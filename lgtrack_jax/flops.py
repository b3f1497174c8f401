"""FLOP counts of jitted functions that hold on every platform (benchmarks' MFU).

XLA's cost analysis of the HLO before any backend pass is one count for every platform, but plugin
backends (CUDA) do not analyse lowered modules, and a compiled module's analysis depends on the
backend: on an H100 the products in cuBLAS / cuDNN calls and Triton fusions went partly uncounted
(10.8 GFLOP per frame in float32 and 56.9 in bf16, of the same 62 GFLOP model). So where the
device's backend cannot count, the same function is lowered for the host CPU from shapes (nothing
compiled or run) and counted there. A fused kernel that is a custom call (model.attention='cudnn')
is opaque to the analysis: its products go uncounted in any of these counts (at lgtrack_b256's
320 tokens the ViT's attention products are about 6% of a frame's FLOPs).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from absl import logging


def count_flops(lowered, compiled, lower_on: Callable[[jax.Device], Any] | None = None
                ) -> tuple[float, str]:
  """(FLOPs, where the count comes from) of a function lowered and compiled for its devices:
  the lowered HLO's; else, with `lower_on(device)` lowering the same function for a device, the
  host CPU's lowering's; else the compiled module's (backend-dependent; the source says so).
  `compiled` is only read in that last case."""
  flops = _flops(lowered.cost_analysis())
  if flops is not None:
    return flops, "HLO"
  try:
    host = jax.devices("cpu")[0]
  except RuntimeError:  # JAX_PLATFORMS leaves the CPU out
    host = None
  if lower_on is not None and host is not None:
    try:
      flops = _flops(lower_on(host).cost_analysis())
    except Exception as e:  # pylint: disable=broad-except  (e.g. a kernel only the device has)
      logging.warning("FLOPs: lowering for the host CPU failed (%s); counting the compiled "
                      "module", e)
      flops = None
    if flops is not None:
      return flops, "HLO lowered for the host CPU"
  return _flops(compiled.cost_analysis()) or 0.0, f"compiled HLO ({jax.default_backend()})"


def _flops(cost) -> float | None:
  if cost is None:
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def shapes_on(tree, device: jax.Device):
  """Every array of `tree` as a ShapeDtypeStruct placed on `device` (to lower for it)."""
  sharding = jax.sharding.SingleDeviceSharding(device)
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)
