"""Independent numpy references for the weight converters' tests (torch layouts, float64).

Nothing here imports the converters: the one-stream ViT forward reads a timm/OSTrack state dict
as PyTorch would use it, and the bicubic resampling follows PyTorch's formula element by element.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _cubic(s: float, a: float = -0.75) -> float:
  """Keys' cubic convolution kernel with PyTorch's a = -0.75."""
  s = abs(s)
  if s <= 1:
    return (a + 2) * s ** 3 - (a + 3) * s ** 2 + 1
  if s < 2:
    return a * s ** 3 - 5 * a * s ** 2 + 8 * a * s - 4 * a
  return 0.0


def _interp_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
  """F.interpolate(mode='bicubic', align_corners=False) along one axis, taps clamped."""
  x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
  n_in = x.shape[0]
  out = np.zeros((n_out,) + x.shape[1:])
  for i in range(n_out):
    src = (i + 0.5) * n_in / n_out - 0.5
    left = math.floor(src)
    for j in range(left - 1, left + 3):
      out[i] += _cubic(src - j) * x[min(max(j, 0), n_in - 1)]
  return np.moveaxis(out, 0, axis)


def bicubic(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """[h, w, D] -> [size[0], size[1], D] as PyTorch's bicubic interpolate (no antialias)."""
  return _interp_axis(_interp_axis(grid, size[0], 0), size[1], 1)


def patch_grid(pos_embed: np.ndarray, num_prefix: int) -> np.ndarray:
  """[1, P + g*g, D] -> [g, g, D]."""
  x = np.asarray(pos_embed, np.float64)[0, num_prefix:]
  g = math.isqrt(x.shape[0])
  return x.reshape(g, g, -1)


def _layer_norm(x, w, b, eps=1e-6):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * w + b


def _patch_embed(images: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
  """uint8 [B, H, W, 3] -> [B, H/p * W/p, D]: ImageNet normalisation, then a stride-p conv
  written as a matmul over (channel, row, col)-flattened patches (torch's weight order)."""
  x = (images.astype(np.float64) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
  d, c, p, _ = weight.shape
  b, h, w, _ = x.shape
  patches = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 5, 2, 4)
  patches = patches.reshape(b, (h // p) * (w // p), c * p * p)
  return patches @ np.asarray(weight, np.float64).reshape(d, -1).T + bias


def vit_forward(sd: dict, prefix: str, template: np.ndarray, search: np.ndarray,
                pos_z: np.ndarray, pos_x: np.ndarray, num_heads: int, depth: int
                ) -> np.ndarray:
  """One-stream ViT (OSTrack's): tokens of concat[z + pos_z; x + pos_x] through the blocks.

  sd: timm-named state dict (keys under `prefix`); pos_z [gz, gz, D], pos_x [gx, gx, D].
  Returns the final-norm tokens [B, Nz + Nx, D] in float64.
  """
  w = lambda k: np.asarray(sd[prefix + k], np.float64)
  linear = lambda x, k: x @ w(k + ".weight").T + w(k + ".bias")
  z = _patch_embed(template, w("patch_embed.proj.weight"), w("patch_embed.proj.bias"))
  x = _patch_embed(search, w("patch_embed.proj.weight"), w("patch_embed.proj.bias"))
  v = np.concatenate([z + pos_z.reshape(-1, pos_z.shape[-1]),
                      x + pos_x.reshape(-1, pos_x.shape[-1])], axis=1)
  b, n, d = v.shape
  for i in range(depth):
    p = f"blocks.{i}."
    y = _layer_norm(v, w(p + "norm1.weight"), w(p + "norm1.bias"))
    qkv = linear(y, p + "attn.qkv").reshape(b, n, 3, num_heads, d // num_heads)
    q, k, val = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // num_heads)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    ctx = (attn @ val).transpose(0, 2, 1, 3).reshape(b, n, d)
    v = v + linear(ctx, p + "attn.proj")
    y = _layer_norm(v, w(p + "norm2.weight"), w(p + "norm2.bias"))
    h = linear(y, p + "mlp.fc1")
    h = 0.5 * h * (1.0 + scipy.special.erf(h / math.sqrt(2.0)))
    v = v + linear(h, p + "mlp.fc2")
  return _layer_norm(v, w("norm.weight"), w("norm.bias"))


def conv_bn(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, bn: dict, eps: float = 1e-5
            ) -> np.ndarray:
  """torch Conv2d(3x3, padding 1) then eval-mode BatchNorm2d, channels-last: [B, H, W, Cin] ->
  [B, H, W, Cout]."""
  b, h, w_, _ = x.shape
  pad = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((b, h, w_, weight.shape[0])) + bias
  for dy in range(3):
    for dx in range(3):
      out += pad[:, dy:dy + h, dx:dx + w_] @ np.asarray(weight[:, :, dy, dx], np.float64).T
  return ((out - bn["running_mean"]) / np.sqrt(bn["running_var"] + eps) * bn["weight"]
          + bn["bias"])


def random_vit_state_dict(rng: np.random.Generator, dim: int, depth: int, patch: int,
                          grid: int, num_prefix: int = 1, mlp_ratio: int = 4,
                          prefix: str = "") -> dict[str, np.ndarray]:
  """timm-named float32 tensors of a ViT (cls token when num_prefix >= 1)."""
  r = lambda *shape, s=0.2: (rng.normal(0.0, s, shape)).astype(np.float32)
  sd = {
      "patch_embed.proj.weight": r(dim, 3, patch, patch, s=0.05),
      "patch_embed.proj.bias": r(dim),
      "pos_embed": r(1, num_prefix + grid * grid, dim, s=0.5),
      "norm.weight": 1 + r(dim), "norm.bias": r(dim),
  }
  if num_prefix >= 1:
    sd["cls_token"] = r(1, 1, dim)
  if num_prefix >= 2:
    sd["dist_token"] = r(1, 1, dim)
  for i in range(depth):
    p = f"blocks.{i}."
    sd.update({
        p + "norm1.weight": 1 + r(dim), p + "norm1.bias": r(dim),
        p + "attn.qkv.weight": r(3 * dim, dim), p + "attn.qkv.bias": r(3 * dim),
        p + "attn.proj.weight": r(dim, dim), p + "attn.proj.bias": r(dim),
        p + "norm2.weight": 1 + r(dim), p + "norm2.bias": r(dim),
        p + "mlp.fc1.weight": r(mlp_ratio * dim, dim), p + "mlp.fc1.bias": r(mlp_ratio * dim),
        p + "mlp.fc2.weight": r(dim, mlp_ratio * dim), p + "mlp.fc2.bias": r(dim),
    })
  return {prefix + k: v for k, v in sd.items()}
