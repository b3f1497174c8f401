"""Training losses (docs/design.md section 3). Pure functions of arrays.

Every loss takes a per-sample weight/mask and returns (scalar, metrics dict).
Box targets are normalised cxcywh in the search crop; maps are [B, H, W] (H = W = search grid).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from lgtrack_jax.models.head import boxes_at
from lgtrack_jax.models.lgtrack import box_token_mask, masked_mean
from lgtrack_jax.ops import boxes as box_ops

_LOGIT_SCALE_MAX = 4.6052  # log(100), CLIP's cap on the inverse temperature


def gaussian_radius(h: jnp.ndarray, w: jnp.ndarray, min_overlap: float = 0.7) -> jnp.ndarray:
  """CenterNet's radius (in cells) within which a box of size h x w keeps IoU >= min_overlap."""
  b1, c1 = h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
  r1 = (b1 + jnp.sqrt(b1 ** 2 - 4 * c1)) / 2
  b2, c2 = 2 * (h + w), (1 - min_overlap) * w * h
  r2 = (b2 + jnp.sqrt(b2 ** 2 - 16 * c2)) / 2
  a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
  r3 = (b3 + jnp.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
  return jnp.minimum(jnp.minimum(r1, r2), r3)


def center_cells(boxes_cxcywh: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
  """[B, 4] normalised cxcywh -> [B, 2] int32 (row, col) of the cell holding the centre."""
  gh, gw = grid
  row = jnp.clip(jnp.floor(boxes_cxcywh[:, 1] * gh), 0, gh - 1)
  col = jnp.clip(jnp.floor(boxes_cxcywh[:, 0] * gw), 0, gw - 1)
  return jnp.stack([row, col], axis=-1).astype(jnp.int32)


def gaussian_heatmap(boxes_cxcywh: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
  """Target heatmap [B, H, W] float32: a Gaussian peaking at exactly 1 on the centre cell.

  sigma = (2 r + 1) / 6 with r CenterNet's radius of the box measured in cells (OSTrack).
  """
  gh, gw = grid
  cells = center_cells(boxes_cxcywh, grid).astype(jnp.float32)
  # Continuous radius (OSTrack floors it): on small maps flooring makes most targets one-hot.
  r = jnp.maximum(gaussian_radius(boxes_cxcywh[:, 3] * gh, boxes_cxcywh[:, 2] * gw), 0)
  sigma = (2 * r + 1) / 6
  dy = jnp.arange(gh, dtype=jnp.float32)[None, :, None] - cells[:, 0, None, None]
  dx = jnp.arange(gw, dtype=jnp.float32)[None, None, :] - cells[:, 1, None, None]
  return jnp.exp(-(dx ** 2 + dy ** 2) / (2 * sigma[:, None, None] ** 2))


def focal_loss(logits: jnp.ndarray, target: jnp.ndarray, weight: jnp.ndarray,
               alpha: float = 2.0, beta: float = 4.0) -> tuple[jnp.ndarray, dict]:
  """CenterNet focal loss. logits, target [B, H, W]; weight [B]. Normalised by #positives.

  Positives are cells where target == 1; negatives are down-weighted by (1 - target)^beta.
  """
  log_p = jax.nn.log_sigmoid(logits)
  log_1mp = jax.nn.log_sigmoid(-logits)
  p = jnp.exp(log_p)
  pos = (target >= 1.0).astype(jnp.float32)
  pos_term = log_p * (1 - p) ** alpha * pos
  neg_term = log_1mp * p ** alpha * (1 - target) ** beta * (1 - pos)
  per_sample = -(pos_term + neg_term).sum(axis=(1, 2))
  num_pos = jnp.maximum((pos.sum(axis=(1, 2)) * weight).sum(), 1.0)
  loss = (per_sample * weight).sum() / num_pos
  return loss, {"focal": loss}


def box_losses(pred_cxcywh: jnp.ndarray, target_cxcywh: jnp.ndarray,
               weight: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, dict]:
  """L1 and GIoU losses, [B, 4] normalised cxcywh each; weight [B]. Returns (l1, giou, metrics)."""
  norm = jnp.maximum(weight.sum(), 1.0)
  l1 = (jnp.abs(pred_cxcywh - target_cxcywh).sum(-1) * weight).sum() / norm
  giou, iou = box_ops.giou_xyxy(box_ops.cxcywh_to_xyxy(pred_cxcywh),
                                box_ops.cxcywh_to_xyxy(target_cxcywh))
  giou_loss = ((1 - giou) * weight).sum() / norm
  mean_iou = (iou * weight).sum() / norm
  return l1, giou_loss, {"l1": l1, "giou": giou_loss, "iou": mean_iou}


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """x / |x| over the last axis, with a finite gradient at x = 0 (masked rows are all-zero)."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps))


def contrastive_loss(vision: jnp.ndarray, text: jnp.ndarray, mask: jnp.ndarray,
                     logit_scale: jnp.ndarray) -> tuple[jnp.ndarray, dict]:
  """Symmetric InfoNCE between matching rows of vision [B, E] and text [B, E].

  Rows with mask [B] False take no part, neither as anchors nor as negatives. Under jit on
  batch-sharded inputs the [B, B] similarity spans the global batch: every sample sees all
  others as negatives. logit_scale is log(1 / temperature), capped at log(100).
  """
  v, t = l2_normalize(vision), l2_normalize(text)
  scale = jnp.exp(jnp.minimum(logit_scale, _LOGIT_SCALE_MAX))
  logits = scale * v @ t.T
  valid = mask.astype(bool)
  pair_ok = valid[:, None] & valid[None, :]
  logits = jnp.where(pair_ok, logits, -1e9)
  diag = jnp.diagonal(logits)
  v2t = jax.nn.logsumexp(logits, axis=1) - diag
  t2v = jax.nn.logsumexp(logits, axis=0) - diag
  n = jnp.maximum(valid.sum(), 1)
  loss = (jnp.where(valid, v2t + t2v, 0.0).sum() / 2) / n
  return loss, {"contrastive": loss, "temperature": 1.0 / scale}


def total_loss(outputs: dict, batch: dict, config: ml_collections.ConfigDict,
               weight: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict]:
  """All tracking terms + contrastive alignment. outputs from `LGTrack`, batch from the pipeline.

  config: `config.loss`. weight [B] (default ones) masks padded samples.
  """
  target = batch["search_box"].astype(jnp.float32)
  score = outputs["score_logits"]
  grid = score.shape[1:3]
  if weight is None:
    weight = jnp.ones(score.shape[:1], jnp.float32)
  focal, metrics = focal_loss(score, gaussian_heatmap(target, grid), weight,
                              config.focal_alpha, config.focal_beta)
  # Box regression at the ground-truth centre cell gives size/offset a clean target from step 0.
  pred = boxes_at(outputs["size"], outputs["offset"], center_cells(target, grid))
  l1, giou, box_metrics = box_losses(pred, target, weight)
  metrics.update(box_metrics)
  # Vision side of the alignment: search tokens pooled inside the ground-truth box.
  # Tokens dropped by candidate elimination (`search_kept` False) are zeros, not features: they
  # are left out unless the box holds no kept token.
  in_box = box_token_mask(target, grid)
  if "search_kept" in outputs:
    kept = in_box & outputs["search_kept"]
    in_box = jnp.where(kept.any(-1, keepdims=True), kept, in_box)
  loss = config.focal_weight * focal + config.l1_weight * l1 + config.giou_weight * giou
  if "text_embed" in outputs:  # a model without a language branch has no alignment term
    vision = masked_mean(outputs["vision_tokens"], in_box)
    con, con_metrics = contrastive_loss(vision, outputs["text_embed"],
                                        outputs["has_text"] & (weight > 0), outputs["logit_scale"])
    metrics.update(con_metrics)
    loss = loss + config.contrastive_weight * con
  metrics["loss"] = loss
  return loss, metrics
