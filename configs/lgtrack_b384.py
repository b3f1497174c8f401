"""LGTrack-B384: lgtrack_b256 (ViT-B/16, BERT-base text) at OSTrack-384's inputs.

  python train.py --config configs/lgtrack_b384.py --workdir DIR \
    --config.data.root=/data/lasot --config.model.text.checkpoint=/ckpt/bert-base-uncased \
    --config.model.init.vit=/ckpt/mae_vit_b16_384
  python -m lgtrack_jax.weights.convert --kind vit --src mae_pretrain_vit_base.pth \
    --dst /ckpt/mae_vit_b16_384 --config configs/lgtrack_b384.py

Inputs as OSTrack's `vitb_384_mae_ce_32x4_ep300` (botaoye/OSTrack experiments/ostrack/*.yaml),
which differ from its 256 model in more than the sizes: template 192 px at factor 2.0, search
384 px at factor 5.0 (256: 4.0), search centre jitter 4.5 and scale jitter 0.5 (256: 3 and
0.25). Grids: template 12 x 12 (Nz 144), search 24 x 24 (Nx 576, a 24 x 24 score map); the
converter resamples MAE's 14 x 14 pretraining grid to both. Everything else is lgtrack_b256's,
`:mix` included.
"""

from configs import lgtrack_b256


def use_384_inputs(c) -> None:
  """Sets OSTrack-384's crop sizes, factors and jitter on config `c` (in place; no key added)."""
  d = c.data
  d.template_size, d.search_size = 192, 384
  d.template_factor, d.search_factor = 2.0, 5.0
  d.template_center_jitter, d.template_scale_jitter = 0.0, 0.0
  d.search_center_jitter, d.search_scale_jitter = 4.5, 0.5


def get_config(arg: str | None = None):
  if arg not in (None, "", "mix"):
    raise ValueError(f"lgtrack_b384: unknown variant {arg!r} (known: 'mix')")
  c = lgtrack_b256.get_config(arg)  # locked: values change below, no key is added
  use_384_inputs(c)
  return c
