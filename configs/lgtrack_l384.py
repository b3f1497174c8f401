"""LGTrack-L384: lgtrack_b384 with a ViT-L/16 (MAE ViT-Large: D 1024, 24 blocks, 16 heads).

  python -m lgtrack_jax.weights.convert --kind vit --src mae_pretrain_vit_large.pth \
    --dst /ckpt/mae_vit_l16_384 --config configs/lgtrack_l384.py
  python train.py --config configs/lgtrack_l384.py --workdir DIR \
    --config.data.root=/data/lasot --config.model.text.checkpoint=/ckpt/bert-base-uncased \
    --config.model.init.vit=/ckpt/mae_vit_l16_384 [--config.model.remat=True]

Inputs as lgtrack_b384 (OSTrack-384's: template 192 px at 2.0, search 384 px at 5.0; grids
12 x 12 and 24 x 24 from MAE's 14 x 14). The EMIMs sit at the same relative depths as
lgtrack_b256's (0, 3, 6, 9) of 12 blocks: (0, 6, 12, 18) of 24, with 16 heads of 64 features
as the ViT's. The text encoder (BERT-base, projected to D), decoder, head and losses are
lgtrack_b256's; `:mix` as there.
"""

from configs import lgtrack_b384


def get_config(arg: str | None = None):
  if arg not in (None, "", "mix"):
    raise ValueError(f"lgtrack_l384: unknown variant {arg!r} (known: 'mix')")
  c = lgtrack_b384.get_config(arg)  # locked: values change below, no key is added
  m = c.model
  base_depth = m.depth
  m.hidden_size, m.depth, m.num_heads = 1024, 24, 16
  # Proportionally equivalent depths: block i of 12 -> block 2i of 24.
  m.emim.layers = tuple(i * m.depth // base_depth for i in m.emim.layers)
  m.emim.num_heads = 16
  return c
