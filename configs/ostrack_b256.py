"""OSTrack-B256 (`vitb_256_mae_ce_32x4_ep300`, botaoye/OSTrack) as a config of this project.

Runs a released OSTrack checkpoint end to end and gives OSTrack's own boxes:

  python -m lgtrack_jax.weights.convert --kind ostrack --config configs/ostrack_b256.py \
    --src OSTrack_ep0300.pth.tar --dst /ckpt/ostrack_b256
  python eval.py --config configs/ostrack_b256.py --weights /ckpt/ostrack_b256 \
    --benchmark lasot --mode bbox --data_root /data/LaSOT --results_dir results/ostrack_b256

The same model code as the LGTrack configs: ViT-B/16 over template 128 / search 256 (factors
2.0 / 4.0), candidate elimination after blocks 3, 6 and 9 keeping 0.7 of the search tokens,
ranked by the template's centre token (CE_TEMPLATE_RANGE 'CTR_POINT'), and OSTrack's center head
reading the ViT's 768-channel search tokens: conv-BN-ReLU stacks 256 -> 128 -> 64 -> 32 -> 1|2|2,
the BatchNorm folded into the convs by the converter (`head.norm='none'`). No language branch and
no decoder. The tracker's test-time conventions (configs/common.py `eval`) are OSTrack's already.
Fine-tuning this config trains the folded head without normalisation; it exists to evaluate
released checkpoints.
"""

from configs import common


def get_config(arg: str | None = None):
  if arg not in (None, ""):
    raise ValueError(f"ostrack_b256: unknown variant {arg!r}")
  c = common.base_config()
  m = c.model
  m.language = False
  m.emim.layers = ()
  m.decoder.num_layers = 0
  m.ce.layers = (3, 6, 9)
  m.ce.keep_ratio = 0.7
  m.ce.template_range = "ctr_point"
  m.head.channels = 256
  m.head.num_convs = 4
  m.head.taper = True
  m.head.norm = "none"
  c.eval.mode = "bbox"
  c.data.template_size, c.data.search_size = 128, 256
  c.data.template_factor, c.data.search_factor = 2.0, 4.0
  c.lock()
  return c
