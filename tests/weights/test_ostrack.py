"""OSTrack checkpoints -> our backbone, position embeddings and the head convs that fit."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from lgtrack_jax.weights import convert, ostrack, pretrained
from tests.conftest import micro_config
from tests.weights import reference
from tests.weights.conftest import config_with_init

D, HEADS, DEPTH, PATCH = 32, 2, 2, 16
# OSTrack's CenterPredictor with inplanes 32, channel 16: 32 -> 16 -> 8 -> 4 -> 2 -> 1|2. The
# micro head (16 channels, one conv per branch, input decoder.hidden_size = 32) fits conv1 only.
_CHANNELS = (32, 16, 8, 4, 2)


def _ostrack_sd(seed: int = 0, z_grid: int = 2, x_grid: int = 4) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  r = lambda *shape, s=0.2: rng.normal(0.0, s, shape).astype(np.float32)
  sd = reference.random_vit_state_dict(rng, D, DEPTH, PATCH, grid=14, prefix="backbone.")
  sd["backbone.pos_embed_z"] = r(1, z_grid * z_grid, D, s=0.5)
  sd["backbone.pos_embed_x"] = r(1, x_grid * x_grid, D, s=0.5)
  for branch, out in (("ctr", 1), ("offset", 2), ("size", 2)):
    for k in range(1, 5):
      c_in, c_out = _CHANNELS[k - 1], _CHANNELS[k]
      p = f"box_head.conv{k}_{branch}."
      sd[p + "0.weight"], sd[p + "0.bias"] = r(c_out, c_in, 3, 3), r(c_out)
      sd[p + "1.weight"], sd[p + "1.bias"] = 1 + r(c_out), r(c_out)
      sd[p + "1.running_mean"], sd[p + "1.running_var"] = r(c_out), 0.5 + rng.random(c_out)
      sd[p + "1.running_var"] = sd[p + "1.running_var"].astype(np.float32)
      sd[p + "1.num_batches_tracked"] = np.array(1000, np.int64)
    sd[f"box_head.conv5_{branch}.weight"] = r(out, _CHANNELS[-1], 1, 1)
    sd[f"box_head.conv5_{branch}.bias"] = r(out)
  return sd


def test_backbone_posembs_and_fitting_head_convs(tmp_path, micro_model, images):
  sd = _ostrack_sd()
  src = tmp_path / "ostrack.safetensors"
  safetensors.numpy.save_file(sd, str(src))
  dst = str(tmp_path / "converted")
  report = convert.convert("ostrack", str(src), dst, micro_config())

  loaded, ignored = report["loaded"], report["ignored"]
  assert loaded["pos_embed_z/pos_embed"] == "backbone.pos_embed_z"
  assert loaded["blocks_1/mlp/fc2/kernel"] == "backbone.blocks.1.mlp.fc2.weight"
  assert loaded["head/size_conv0/kernel"] == "box_head.conv1_size.0.weight (BatchNorm folded in)"
  assert "pretraining position embedding" in ignored["backbone.pos_embed"]
  assert "backbone.cls_token" in ignored
  assert report["folded"]["box_head.conv1_ctr.1.running_var"].startswith("BatchNorm folded")
  assert "head/score_conv1/kernel, which this model does not have" in ignored[
      "box_head.conv2_ctr.0.weight"]
  assert ("shape mismatch: box_head.conv5_offset.weight -> head/offset_out/kernel: expected "
          "(1, 1, 16, 2), found (1, 1, 2, 2)") in ignored["box_head.conv5_offset.weight"]
  # conv5's bias [2] fits our offset_out bias, its kernel does not: the conv stays fresh whole.
  assert "head/offset_out/kernel does not fit" in ignored["box_head.conv5_offset.bias"]
  assert [p for p in report["not_loaded"] if p.startswith("head/")] == sorted(
      f"head/{b}_{part}" for b in ("score", "offset", "size")
      for part in ("norm0/scale", "norm0/bias", "out/kernel", "out/bias"))
  assert "decoder/joint_mlp/fc1/kernel" in report["not_loaded"]  # ours beyond OSTrack's
  # Every source tensor is accounted for: loaded, folded into a loaded one, or ignored.
  assert set(sd) == ({v.split(" ")[0] for v in loaded.values()} | set(report["folded"])
                     | set(ignored))

  params, init_report = pretrained.apply_pretrained(
      config_with_init(tracker=dst), micro_model.fresh_params)
  assert init_report.loaded["head/score_conv0/bias"].startswith("init.tracker: ")
  assert "head/score_norm0/scale" in init_report.fresh

  # Backbone: OSTrack's own grids, no resampling.
  z, x = images
  ref = reference.vit_forward(sd, "backbone.", z, x,
                              sd["backbone.pos_embed_z"].reshape(2, 2, D),
                              sd["backbone.pos_embed_x"].reshape(4, 4, D), HEADS, DEPTH)
  np.testing.assert_allclose(micro_model.vit_tokens(params, z, x), ref, atol=1e-4, rtol=0)

  # Head conv1 with its BatchNorm folded in == OSTrack's conv -> BN (eval).
  feats = np.random.default_rng(3).normal(size=(2, 4, 4, 32)).astype(np.float32)
  conv = params["head"]["offset_conv0"]
  ours = nn.Conv(16, (3, 3)).apply({"params": conv}, jnp.asarray(feats))
  p = "box_head.conv1_offset."
  bn = {k: sd[p + "1." + k] for k in ("weight", "bias", "running_mean", "running_var")}
  theirs = reference.conv_bn(feats, sd[p + "0.weight"], sd[p + "0.bias"], bn)
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("taper", [True, False])
def test_a_tapered_head_takes_every_ostrack_head_conv(taper):
  """OSTrack's head halves its channels at each conv (`model.head.taper`): a tapered head of four
  convs takes all of them (the micro decoder's 32 channels are this OSTrack's inplanes), and only
  our LayerNorms stay fresh; with `channels` at every conv only conv1 fits."""
  c = micro_config()
  with c.unlocked():
    c.model.head.num_convs, c.model.head.taper = 4, taper
  sd = _ostrack_sd()
  out, not_loaded = ostrack.convert_ostrack(sd, c)
  for branch, theirs in (("score", "ctr"), ("offset", "offset"), ("size", "size")):
    for k in range(4):
      loaded = f"head/{branch}_conv{k}/kernel" in out.loaded
      assert loaded == (taper or k == 0), (branch, k)
    assert (f"head/{branch}_out/kernel" in out.loaded) == taper
    if taper:
      np.testing.assert_array_equal(out.params[f"head/{branch}_out/bias"],
                                    sd[f"box_head.conv5_{theirs}.bias"])
  norms = sorted(f"head/{b}_norm{k}/{p}" for b in ("score", "offset", "size") for k in range(4)
                 for p in ("scale", "bias"))
  head = [p for p in not_loaded if p.startswith("head/")]
  if taper:
    assert head == norms
  else:
    assert set(norms) < set(head) and "head/score_conv1/kernel" in head


def test_other_grids_are_resampled():
  sd = _ostrack_sd(seed=1, z_grid=3, x_grid=6)  # e.g. OSTrack-384 into a 256 config
  out, _ = ostrack.convert_ostrack(sd, micro_config())
  np.testing.assert_allclose(out.params["pos_embed_x/pos_embed"],
                             reference.bicubic(sd["backbone.pos_embed_x"].reshape(6, 6, D),
                                               (4, 4)), atol=1e-6)
  np.testing.assert_allclose(out.params["pos_embed_z/pos_embed"],
                             reference.bicubic(sd["backbone.pos_embed_z"].reshape(3, 3, D),
                                               (2, 2)), atol=1e-6)


def test_corner_head_is_listed_and_backbone_errors_are_collected():
  sd = {k: v for k, v in _ostrack_sd(seed=2).items() if not k.startswith("box_head.")}
  sd["box_head.conv1_tl.0.weight"] = np.zeros((16, 32, 3, 3), np.float32)  # a corner head
  out, not_loaded = ostrack.convert_ostrack(sd, micro_config())
  assert "no counterpart" in out.ignored["box_head.conv1_tl.0.weight"]
  assert len([p for p in not_loaded if p.startswith("head/")]) == 3 * 6  # all of the head fresh

  del sd["backbone.pos_embed_x"]
  del sd["backbone.blocks.0.attn.proj.bias"]
  sd["backbone.blocks.1.norm1.weight"] = np.ones(D + 2, np.float32)
  sd["backbone.blocks.0.attn.qkv.q_norm.weight"] = np.ones(16, np.float32)
  with pytest.raises(ValueError) as err:
    ostrack.convert_ostrack(sd, micro_config())
  msg = str(err.value)
  assert "(4 problems)" in msg, msg
  for part in ("missing tensor for pos_embed_x/pos_embed (4, 4, 32)",
               "missing tensor for blocks_0/attn/out/bias (32,)",
               "shape mismatch: backbone.blocks.1.norm1.weight -> blocks_1/norm1/scale",
               "unrecognised tensor backbone.blocks.0.attn.qkv.q_norm.weight"):
    assert part in msg, part


@pytest.mark.torch
def test_net_wrapper_of_a_training_checkpoint(tmp_path):
  torch = pytest.importorskip("torch", reason="torch is not installed (PyTorch-file path)")
  sd = _ostrack_sd(seed=3)
  path = tmp_path / "OSTrack_ep0300.pth.tar"
  torch.save({"net": {k: torch.from_numpy(v) for k, v in sd.items()}, "epoch": 300,
              "net_type": "OSTrack"}, path)
  params, report = ostrack.convert_ostrack_file(str(path), micro_config())
  assert report["kind"] == "ostrack"
  np.testing.assert_array_equal(params["norm/scale"], sd["backbone.norm.weight"])


# configs/ostrack_b256.py shrunk to the micro ViT of `_ostrack_sd` (32-d, 2 blocks, CE after
# block 1), with OSTrack's head of inplanes 32 and 16 channels: 32 -> 16 -> 8 -> 4 -> 2 -> 1|2.
_MICRO_OSTRACK = (
    "--config=configs/ostrack_b256.py", f"--config.model.hidden_size={D}",
    f"--config.model.depth={DEPTH}", f"--config.model.num_heads={HEADS}",
    "--config.model.pretrain_grid=14", "--config.model.ce.layers=(1,)",
    "--config.model.head.channels=16", "--config.data.template_size=32",
    "--config.data.search_size=64")


def test_a_released_ostrack_checkpoint_converts_whole_and_evaluates(tmp_path):
  """`convert --kind ostrack --config configs/ostrack_b256.py` loads all of an OSTrack checkpoint
  (only its pretraining leftovers ignored, nothing of ours fresh), and `eval.py --weights` tracks
  a benchmark split from it without a training workdir."""
  import json  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from input_pipeline import synthetic  # pylint: disable=import-outside-toplevel
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  sd = _ostrack_sd()
  sd["backbone.cls_token"] = np.zeros((1, 1, D), np.float32)
  src, dst = tmp_path / "OSTrack_ep0300.safetensors", tmp_path / "converted"
  safetensors.numpy.save_file(sd, str(src))

  def run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": repo})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout

  run("-m", "lgtrack_jax.weights.convert", "--kind=ostrack", f"--src={src}", f"--dst={dst}",
      *_MICRO_OSTRACK)
  with open(dst / "report.json", encoding="utf-8") as f:
    report = json.load(f)
  assert sorted(report["ignored"]) == ["backbone.cls_token", "backbone.pos_embed"]
  assert report["not_loaded"] == []
  assert len(report["folded"]) == 3 * 4 * 5  # every head BatchNorm, into its conv
  assert set(sd) == ({v.split(" ")[0] for v in report["loaded"].values()}
                     | set(report["folded"]) | set(report["ignored"]))

  data, results = str(tmp_path / "data"), tmp_path / "results"
  synthetic.generate(data, num_train=0, num_test=2, num_frames=6, seed=5)
  out = run("eval.py", *_MICRO_OSTRACK, f"--weights={dst}", "--benchmark=synthetic",
            f"--data_root={data}", "--mode=bbox", f"--results_dir={results}")
  assert "AUC" in out
  names = sorted(s.name for s in sources_of(data))
  for name in names:
    boxes = np.loadtxt(results / f"{name}.txt", delimiter=",")
    assert boxes.shape == (6, 4) and np.all(np.isfinite(boxes))
  with open(results / "metrics.json", encoding="utf-8") as f:
    metrics = json.load(f)
  assert metrics["weights"] == str(dst) and metrics["checkpoint"] is None
  assert np.isfinite(metrics["auc"])
  with open(results / "run.json", encoding="utf-8") as f:
    assert json.load(f)["weights"] == str(dst)


def sources_of(root: str):
  from input_pipeline import sources  # pylint: disable=import-outside-toplevel
  return sources.load("synthetic", root, "test")


def test_weights_that_do_not_fit_the_config_are_one_error(tmp_path):
  c = micro_config()
  sd = _ostrack_sd()
  src = tmp_path / "ostrack.safetensors"
  safetensors.numpy.save_file(sd, str(src))
  convert.convert("ostrack", str(src), str(tmp_path / "w"), c)
  with pytest.raises(ValueError) as err:  # the micro LGTrack has far more than OSTrack gives
    pretrained.load_weights(c, str(tmp_path / "w"))
  msg = str(err.value)
  assert "do not fit the config" in msg and "missing" in msg and "decoder/" in msg
