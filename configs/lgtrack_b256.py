"""LGTrack-B256: ViT-B/16 one-stream encoder, BERT-base text, 128/256 template/search inputs.

  python train.py --config configs/lgtrack_b256.py --workdir DIR \
    --config.data.root=/data/lasot --config.model.text.checkpoint=/ckpt/bert-base-uncased \
    --config.model.init.vit=/ckpt/mae_vit_b16_converted
"""

from configs import common


def get_config(arg: str | None = None):
  del arg
  c = common.base_config()
  c.lock()
  return c
