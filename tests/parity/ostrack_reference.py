"""OSTrack's own test-time code (a local checkout of botaoye/OSTrack), run on the CPU.

Nothing of OSTrack is copied here: this module puts the checkout on `sys.path` and calls its
config loader, `build_ostrack`, its `OSTrack` tracker class (`lib/test/tracker/ostrack.py`) and
nothing else. Five things make that code run on a CPU-only machine with today's wheels, and none
of them touches a computation:
- `.cuda()` becomes the identity (the tracker and its `Preprocessor` call it unconditionally);
- `torch._six` (gone since torch 2.0; OSTrack's training data loader, imported on the way to
  `sample_target`, reads `string_classes` from it) is given back as a two-line module;
- `jpeg4py` (the same loader's JPEG decoder, never called here) is an empty module;
- `lib.vis.visdom_cus` (imported by `BaseTracker` for debug drawing) is replaced by an empty
  module, so that visdom need not be installed;
- PyPI's torchvision wheels are CUDA builds whose C ops do not load beside the CPU torch wheel.
  OSTrack and timm use none of those ops, but importing torchvision registers fake kernels for
  `torchvision::nms` / `qnms`, which needs the two schemas: they are declared here first.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import torch

YAML = "vitb_256_mae_ce_32x4_ep300"
_loaded = False


def _declare_torchvision_ops():
  """Before anything imports torchvision (timm does): its two schemas, unless its C ops load."""
  try:
    import torchvision  # pylint: disable=import-outside-toplevel,unused-import
    return None
  except ImportError:
    return None
  except RuntimeError:  # its fake-kernel registration failed: the C ops did not load
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
      del sys.modules[name]
  lib = torch.library.Library("torchvision", "DEF")
  for op in ("nms", "qnms"):
    lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
  return lib


_TORCHVISION_LIB = _declare_torchvision_ops()  # kept alive: the definitions live with it


def load(root: str) -> None:
  """Makes OSTrack's `lib` importable from the checkout at `root` (idempotent)."""
  global _loaded
  if _loaded:
    return
  if not os.path.isfile(os.path.join(root, "lib", "test", "tracker", "ostrack.py")):
    raise FileNotFoundError(f"OSTRACK_ROOT={root!r} is not a checkout of botaoye/OSTrack "
                            "(no lib/test/tracker/ostrack.py)")
  torch.Tensor.cuda = lambda self, *a, **k: self
  torch.nn.Module.cuda = lambda self, *a, **k: self
  six = types.ModuleType("torch._six")
  six.string_classes, six.int_classes = (str,), (int,)
  sys.modules.setdefault("torch._six", six)
  sys.modules.setdefault("jpeg4py", types.ModuleType("jpeg4py"))
  vis = types.ModuleType("lib.vis.visdom_cus")
  vis.Visdom = None
  sys.modules["lib.vis.visdom_cus"] = vis
  sys.path.insert(0, root)
  _loaded = True


def build_model(root: str, seed: int):
  """OSTrack's network from its experiment config, seeded random weights -> (model, cfg).

  `build_ostrack(cfg, training=False)` loads no pretrained file. The head's BatchNorm statistics
  and affine parameters are randomised too (a fresh BatchNorm is the identity in eval mode, which
  would leave the converter's folding of it untested).
  """
  from lib.config.ostrack import config as ostrack_config  # pylint: disable=import-outside-toplevel
  from lib.models.ostrack import build_ostrack  # pylint: disable=import-outside-toplevel
  ostrack_config.update_config_from_file(
      os.path.join(root, "experiments", "ostrack", f"{YAML}.yaml"))
  cfg = ostrack_config.cfg
  torch.manual_seed(seed)
  model = build_ostrack(cfg, training=False)
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        n = module.num_features
        module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
        module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
        module.weight.copy_(1 + 0.2 * torch.randn(n, generator=gen))
        module.bias.copy_(0.2 * torch.randn(n, generator=gen))
  return model.eval(), cfg


def save_checkpoint(model, path: str) -> None:
  """As OSTrack's trainer saves its checkpoints: {'net': state_dict, ...}."""
  torch.save({"net": model.state_dict(), "epoch": 300, "net_type": "OSTrack"}, path)


def make_tracker(root: str, cfg, checkpoint: str):
  """OSTrack's tracker class over `checkpoint`, with the parameters of lib/test/parameter."""
  del root
  from lib.test.tracker.ostrack import OSTrack  # pylint: disable=import-outside-toplevel
  from lib.test.utils import TrackerParams  # pylint: disable=import-outside-toplevel
  params = TrackerParams()
  params.cfg = cfg
  params.template_factor, params.template_size = cfg.TEST.TEMPLATE_FACTOR, cfg.TEST.TEMPLATE_SIZE
  params.search_factor, params.search_size = cfg.TEST.SEARCH_FACTOR, cfg.TEST.SEARCH_SIZE
  params.checkpoint = checkpoint
  params.debug = 0
  params.save_all_boxes = False
  torch.set_num_threads(max(os.cpu_count() or 1, 1))
  return OSTrack(params, "lasot")


def track(tracker, frames: list[np.ndarray], init_box: np.ndarray) -> np.ndarray:
  """OSTrack's boxes [N, 4] float64 xywh px: the given first box, then `tracker.track`'s."""
  tracker.initialize(frames[0], {"init_bbox": [float(v) for v in init_box]})
  boxes = [np.asarray(init_box, np.float64)]
  for frame in frames[1:]:
    boxes.append(np.asarray(tracker.track(frame)["target_bbox"], np.float64))
  return np.stack(boxes)
