"""Tiny LGTrack for CPUs: trains on the built-in synthetic data in about 10 minutes on 2 cores.

  python train.py --config configs/tiny.py --workdir runs/demo/train
"""

from configs import common


def get_config(arg: str | None = None):
  del arg
  c = common.base_config()
  m = c.model
  m.hidden_size = 128
  m.depth = 4
  m.num_heads = 4
  m.pretrain_grid = 8
  m.emim.layers = (0, 2)
  m.emim.num_heads = 4
  m.decoder.num_layers = 2
  m.decoder.hidden_size = 128
  m.decoder.num_heads = 4
  m.head.channels = 64
  m.head.num_convs = 2
  m.embed_dim = 128
  # all-MiniLM-L6-v2 (6 layers, 384-d), frozen: on 2 CPU cores its backward pass would cost
  # more than the whole tracker.
  m.text.checkpoint = common.default_text_checkpoint()
  m.text.max_len = 16
  m.text.trainable = False
  m.text.hidden_size = 384
  m.text.num_layers = 6
  m.text.num_heads = 12
  m.text.intermediate_size = 1536

  d = c.data
  d.name = "synthetic"
  d.root = "runs/demo/data"
  d.template_size = 64
  d.search_size = 128
  d.max_gap = 50
  d.mode_probs = (0.1, 0.4, 0.5)
  d.num_parallel_calls = 2

  o = c.optim
  o.lr = 1e-3
  o.backbone_lr_mult = 1.0  # trained from scratch
  o.clip_norm = 1.0
  o.warmup_steps = 100
  o.weight_decay = 1e-4

  t = c.train
  t.steps = 1000
  t.global_batch = 32
  t.log_every = 25
  t.checkpoint_every = 250

  c.eval.dataset = "synthetic"
  c.eval.window_influence = 0.3
  c.lock()
  return c
