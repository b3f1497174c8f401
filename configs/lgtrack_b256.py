"""LGTrack-B256: ViT-B/16 one-stream encoder, BERT-base text, 128/256 template/search inputs.

  python train.py --config configs/lgtrack_b256.py --workdir DIR \
    --config.data.root=/data/lasot --config.model.text.checkpoint=/ckpt/bert-base-uncased \
    --config.model.init.vit=/ckpt/mae_vit_b16_converted

`configs/lgtrack_b256.py:mix` trains on the language-tracking mixture instead, each dataset in its
own folder under `--config.data.root` (lasot/, tnl2k/, refcocog/ = the TFDS manual dir,
otb99_lang/); `--config.data.train=...` sets any other mixture.
"""

from configs import common


# (name, root relative to data.root, ratio, split) [ours: equal weights, as JointNLT's datasets].
MIXTURE = (
    ("lasot", "lasot", 1.0, "train"),
    ("tnl2k", "tnl2k", 1.0, "train"),
    ("refcocog", "refcocog", 1.0, "train"),
    ("otb99_lang", "otb99_lang", 1.0, "train"),
)


def get_config(arg: str | None = None):
  if arg not in (None, "", "mix"):
    raise ValueError(f"lgtrack_b256: unknown variant {arg!r} (known: 'mix')")
  c = common.base_config()
  if arg == "mix":
    c.data.train = MIXTURE
  c.lock()
  return c
