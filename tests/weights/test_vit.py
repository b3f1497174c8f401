"""ViT checkpoints (timm / MAE / DeiT layouts) -> our ViT: forward parity, report, errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy

from lgtrack_jax.weights import checkpoint_io, convert, pretrained
from lgtrack_jax.weights import vit as vit_lib
from tests.conftest import micro_config
from tests.weights import reference
from tests.weights.conftest import config_with_init

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The micro config's ViT: D 32, 2 heads, 2 blocks, patch 16, grids 2x2 (template), 4x4 (search).
D, HEADS, DEPTH, PATCH = 32, 2, 2, 16


def _timm_sd(seed: int = 0, grid: int = 3, num_prefix: int = 1, prefix: str = "") -> dict:
  """A timm ViT whose 3x3 pretraining grid is resampled down (template) and up (search)."""
  rng = np.random.default_rng(seed)
  sd = reference.random_vit_state_dict(rng, D, DEPTH, PATCH, grid, num_prefix, prefix=prefix)
  sd[prefix + "head.weight"] = rng.normal(size=(10, D)).astype(np.float32)
  sd[prefix + "head.bias"] = np.zeros(10, np.float32)
  return sd


def _torch():
  return pytest.importorskip("torch", reason="torch is not installed (PyTorch-file path)")


def _save_torch(obj, path):
  torch = _torch()
  to_torch = lambda v: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
  wrap = lambda o: ({k: wrap(v) for k, v in o.items()} if isinstance(o, dict) else to_torch(o))
  torch.save(wrap(obj), path)
  return str(path)


def test_timm_safetensors_round_trip_matches_numpy_vit(tmp_path, micro_model, images):
  sd = _timm_sd()
  src = tmp_path / "model.safetensors"
  safetensors.numpy.save_file(sd, str(src))
  dst = str(tmp_path / "converted")
  report = convert.convert("vit", str(src), dst, micro_config())

  assert report["loaded"]["blocks_1/attn/value/kernel"] == "blocks.1.attn.qkv.weight"
  assert set(report["ignored"]) == {"cls_token", "head.weight", "head.bias"}
  assert "class token" in report["ignored"]["cls_token"]
  assert report["model"]["template_grid"] == [2, 2] and report["model"]["search_grid"] == [4, 4]
  with open(os.path.join(dst, "report.json"), encoding="utf-8") as f:
    assert json.load(f)["kind"] == "vit"

  params, init_report = pretrained.apply_pretrained(config_with_init(vit=dst), micro_model.fresh_params)
  assert init_report.loaded["blocks_0/norm1/scale"] == "init.vit: blocks.0.norm1.weight"
  assert "blocks_0/attn/query/kernel" not in init_report.fresh
  assert "decoder/query_embed" in init_report.fresh

  z, x = images
  ours = micro_model.vit_tokens(params, z, x)
  pos = reference.patch_grid(sd["pos_embed"], 1)
  ref = reference.vit_forward(sd, "", z, x, reference.bicubic(pos, (2, 2)),
                              reference.bicubic(pos, (4, 4)), HEADS, DEPTH)
  assert ours.shape == (2, 4 + 16, D)
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
  # The fresh model is far from it: the comparison means something.
  assert np.abs(micro_model.vit_tokens(micro_model.fresh_params, z, x) - ref).max() > 0.1


def test_layouts_of_converted_tensors():
  sd = _timm_sd(seed=1)
  out = vit_lib.convert_vit(sd, micro_config())
  p = out.params
  qkv_w = sd["blocks.0.attn.qkv.weight"]
  # Row h * Dh + j of torch's query weight is head h, feature j.
  np.testing.assert_array_equal(p["blocks_0/attn/query/kernel"][:, 1, 3], qkv_w[16 + 3])
  np.testing.assert_array_equal(p["blocks_0/attn/key/kernel"][:, 0, 5], qkv_w[D + 5])
  np.testing.assert_array_equal(p["blocks_0/attn/value/bias"][1],
                                sd["blocks.0.attn.qkv.bias"][2 * D + 16:])
  np.testing.assert_array_equal(p["blocks_0/attn/out/kernel"][1, 2],
                                sd["blocks.0.attn.proj.weight"][:, 16 + 2])
  np.testing.assert_array_equal(p["patch_embed/proj/kernel"][4, 7, 2],
                                sd["patch_embed.proj.weight"][:, 2, 4, 7])
  assert all(a.dtype == np.float32 for a in p.values())


def test_deit_distilled_and_no_embed_class_prefixes():
  sd = _timm_sd(seed=2, num_prefix=2)  # DeiT distilled: cls + dist tokens lead pos_embed
  sd["head_dist.weight"] = np.zeros((10, D), np.float32)
  out = vit_lib.convert_vit(sd, micro_config())
  expected = reference.bicubic(reference.patch_grid(sd["pos_embed"], 2), (4, 4))
  np.testing.assert_allclose(out.params["pos_embed_x/pos_embed"], expected, atol=1e-6)
  assert {"dist_token", "head_dist.weight"} <= set(out.ignored)

  sd = _timm_sd(seed=3, num_prefix=0)  # timm no_embed_class: a cls token, no position for it
  sd["cls_token"] = np.zeros((1, 1, D), np.float32)
  out = vit_lib.convert_vit(sd, micro_config())
  expected = reference.bicubic(reference.patch_grid(sd["pos_embed"], 0), (2, 2))
  np.testing.assert_allclose(out.params["pos_embed_z/pos_embed"], expected, atol=1e-6)


def test_every_problem_is_listed_in_one_error():
  sd = _timm_sd()
  del sd["blocks.1.norm2.weight"]
  del sd["norm.bias"]
  sd["blocks.0.mlp.fc1.weight"] = np.zeros((4 * D, D + 1), np.float32)
  sd["blocks.0.ls1.gamma"] = np.ones(D, np.float32)  # DeiT-III layer scale: we have none
  sd["blocks.2.norm1.weight"] = np.ones(D, np.float32)  # a third block in a 2-block config
  sd["blocks.1.attn.qkv.weight"] = np.zeros((3 * 30, 30), np.float32)  # 30 % 2 == 0, wrong D
  with pytest.raises(ValueError) as err:
    vit_lib.convert_vit(sd, micro_config())
  msg = str(err.value)
  assert "(8 problems)" in msg, msg
  for part in (
      "missing tensor for blocks_1/norm2/scale (32,)",
      "missing tensor for norm/bias (32,)",
      ("shape mismatch: blocks.0.mlp.fc1.weight -> blocks_0/mlp/fc1/kernel: expected (32, 128), "
       "found (33, 128)"),
      "unrecognised tensor blocks.0.ls1.gamma (32,)",
      "tensor blocks.2.norm1.weight maps to blocks_2/norm1/scale, which this model does not have",
      ("shape mismatch: blocks.1.attn.qkv.weight -> blocks_1/attn/query/kernel: expected "
       "(32, 2, 16), found (30, 2, 15)")):
    assert part in msg, part
  assert "blocks_1/attn/value/kernel: expected" in msg  # one line per kernel of the fused qkv
  assert "missing tensor for blocks_0/mlp/fc1/kernel" not in msg  # said once, as a mismatch


def test_heads_that_do_not_divide_are_reported():
  config = micro_config()
  config.unlock()
  config.model.num_heads = 3  # 32 features do not split into 3 heads
  config.model.emim.num_heads = 4
  config.lock()
  with pytest.raises(ValueError, match="32 features do not split into 3 heads"):
    vit_lib.convert_vit(_timm_sd(), config, expected=vit_lib.model_param_shapes(micro_config()))


@pytest.mark.torch
def test_mae_pth_with_decoder_loads_like_safetensors(tmp_path):
  sd = _timm_sd(seed=4)
  mae = dict(sd, mask_token=np.zeros((1, 1, 16), np.float32),
             decoder_pos_embed=np.zeros((1, 10, 16), np.float32),
             **{"decoder_blocks.0.attn.qkv.weight": np.zeros((48, 16), np.float32),
                "decoder_embed.weight": np.zeros((16, D), np.float32),
                "decoder_pred.bias": np.zeros(768, np.float32)})
  path = _save_torch({"model": mae}, tmp_path / "mae_pretrain_vit_micro.pth")
  params, report = vit_lib.convert_vit_file(path, micro_config())
  reference_params = vit_lib.convert_vit(sd, micro_config()).params
  assert params.keys() == reference_params.keys()
  for k, v in params.items():
    np.testing.assert_array_equal(v, reference_params[k], err_msg=k)
  assert report["ignored"]["decoder_blocks.0.attn.qkv.weight"].startswith("MAE decoder")
  assert "mask_token" in report["ignored"]


@pytest.mark.torch
def test_state_dict_wrapper_and_ddp_prefix(tmp_path):
  sd = _timm_sd(seed=5)
  torch_sd = {"module." + k: v for k, v in sd.items()}
  path = _save_torch({"state_dict": torch_sd, "epoch": 3}, tmp_path / "ckpt.pth")
  assert checkpoint_io.read_state_dict(path).keys() == sd.keys()


@pytest.mark.torch
def test_pickled_objects_are_refused_with_a_way_out(tmp_path):
  _torch()
  path = _save_torch({"model": _timm_sd(), "args": argparse.Namespace(lr=1e-3)},
                     tmp_path / "checkpoint-799.pth")
  with pytest.raises(ValueError, match=r"pickles Python objects(.|\n)*argparse"):
    checkpoint_io.read_state_dict(path)


def test_torch_file_without_torch_is_a_clear_error(tmp_path):
  try:
    import torch  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    pytest.skip("torch is installed; this checks the message given without it")
  except ImportError:
    pass
  path = tmp_path / "mae.pth"
  path.write_bytes(b"not read")
  with pytest.raises(ImportError, match="needs torch"):
    checkpoint_io.read_state_dict(str(path))


def test_cli_writes_params_and_report(tmp_path):
  src = tmp_path / "vit.safetensors"
  safetensors.numpy.save_file(_timm_sd(), str(src))
  cfg = tmp_path / "micro.py"
  cfg.write_text("from tests.conftest import micro_config\n"
                 "def get_config(arg=None):\n  return micro_config()\n")
  dst = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "lgtrack_jax.weights.convert", "--kind=vit", f"--src={src}",
       f"--dst={dst}", f"--config={cfg}"], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
      capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads(proc.stdout)
  assert summary["kind"] == "vit" and summary["loaded"] == 6 + DEPTH * 16
  flat, report = checkpoint_io.load_converted(str(dst))
  assert flat["pos_embed_x/pos_embed"].shape == (4, 4, D)
  assert report["source"] == str(src)


@pytest.mark.parametrize("args, message", [
    (["--kind=vit", "--src=SRC", "--dst=DST"], "--kind vit needs --config"),
    (["--kind=vit", "--dst=DST"], "--src is required"),
    (["--kind=vit", "--src=SRC", "--dst=DST", "--config=configs/tiny.py"],
     "checkpoint file 'SRC' does not exist"),
])
def test_cli_user_errors_are_one_line(tmp_path, args, message):
  src, dst = str(tmp_path / "missing.pth"), str(tmp_path / "out")
  args = [a.replace("SRC", src).replace("DST", dst) for a in args]
  proc = subprocess.run([sys.executable, "-m", "lgtrack_jax.weights.convert", *args], cwd=REPO,
                        env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=120, check=False)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith("lgtrack_jax.weights.convert: error: ")
  assert message.replace("SRC", src) in lines[0]
  assert not os.path.exists(dst)


@pytest.mark.parity
def test_parity_with_a_pytorch_vit(tmp_path):
  """A PyTorch one-stream ViT (OSTrack's forward, built from torch.nn) on MAE-named weights ->
  `torch.save` -> convert (torch.load path) -> our LGTrack's ViT gives the same tokens."""
  torch = _torch()
  import jax  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel
  from torch.nn import functional as F  # pylint: disable=import-outside-toplevel

  from lgtrack_jax.models import lgtrack  # pylint: disable=import-outside-toplevel

  dim, heads, depth, patch, grid = 192, 3, 3, 16, 14  # a ViT-Ti-like net on MAE's 14x14 grid

  class Attention(nn.Module):

    def __init__(self):
      super().__init__()
      self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
      b, n, _ = x.shape
      q, k, v = self.qkv(x).reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
      out = F.scaled_dot_product_attention(q, k, v)
      return self.proj(out.transpose(1, 2).reshape(b, n, dim))

  class Mlp(nn.Module):

    def __init__(self):
      super().__init__()
      self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
      return self.fc2(F.gelu(self.fc1(x)))

  class Block(nn.Module):

    def __init__(self):
      super().__init__()
      self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention()
      self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp()

    def forward(self, x):
      x = x + self.attn(self.norm1(x))
      return x + self.mlp(self.norm2(x))

  class PatchEmbed(nn.Module):

    def __init__(self):
      super().__init__()
      self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
      return self.proj(x).flatten(2).transpose(1, 2)

  class ViT(nn.Module):
    """MAE's parameter names; forward as OSTrack's one-stream backbone."""

    def __init__(self):
      super().__init__()
      self.patch_embed = PatchEmbed()
      self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
      self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid * grid, dim) * 0.5)
      self.blocks = nn.ModuleList([Block() for _ in range(depth)])
      self.norm = nn.LayerNorm(dim, eps=1e-6)

    def grid_pos(self, size):
      pe = self.pos_embed[:, 1:].transpose(1, 2).reshape(1, dim, grid, grid)
      pe = F.interpolate(pe, size=(size, size), mode="bicubic", align_corners=False)
      return pe.flatten(2).transpose(1, 2)

    def forward(self, z, x):
      z = self.patch_embed(z) + self.grid_pos(z.shape[-1] // patch)
      x = self.patch_embed(x) + self.grid_pos(x.shape[-1] // patch)
      v = torch.cat([z, x], dim=1)
      for blk in self.blocks:
        v = blk(v)
      return self.norm(v)

  torch.manual_seed(0)
  net = ViT().eval()
  with torch.no_grad():  # non-trivial norms and biases
    for name, p in net.named_parameters():
      if name.endswith("bias") or "norm" in name:
        p.add_(torch.randn_like(p) * 0.1)
  src = tmp_path / "mae_pretrain_vit_tiny.pth"
  torch.save({"model": net.state_dict()}, src)

  config = micro_config()
  config.unlock()
  m = config.model
  m.hidden_size, m.num_heads, m.depth, m.emim.num_heads = dim, heads, depth, heads
  m.emim.layers = (0,)
  m.decoder.hidden_size = 64
  config.data.template_size, config.data.search_size = 128, 256  # grids 8 and 16 from 14
  dst = str(tmp_path / "converted")
  convert.convert("vit", str(src), dst, config)
  config.model.init.vit = dst
  config.lock()

  model = lgtrack.build_model(config)
  fresh = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  params, _ = pretrained.apply_pretrained(config, fresh)
  rng = np.random.default_rng(0)
  z = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
  x = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
  inputs = dict(lgtrack.dummy_inputs(config, 2), template=z, search=x,
                mode=np.zeros(2, np.int32))
  _, state = model.apply({"params": params}, **inputs, mutable=["intermediates"],
                         capture_intermediates=lambda mdl, _: mdl.scope.path == ("norm",))
  ours = np.asarray(state["intermediates"]["norm"]["__call__"][0])

  mean = torch.tensor(reference.IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
  std = torch.tensor(reference.IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
  to_torch = lambda a: (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
  with torch.no_grad():
    theirs = net(to_torch(z), to_torch(x)).numpy()
  assert ours.shape == theirs.shape == (2, 64 + 256, dim)
  np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=0)
