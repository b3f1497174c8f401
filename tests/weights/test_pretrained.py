"""`config.model.init`: sources replace the fresh init, with shardings, a report and checks."""

from __future__ import annotations

import json
import logging
import os

import jax
import numpy as np
import pytest
import safetensors.numpy

from lgtrack_jax.weights import checkpoint_io, convert, posemb, pretrained
from tests.conftest import micro_config
from tests.weights import reference

D = 32


def _config(text_checkpoint: str = "", template_size: int | None = None, **init):
  config = micro_config()
  config.unlock()
  for key, value in init.items():
    config.model.init[key] = value
  config.model.text.checkpoint = text_checkpoint
  if template_size:
    config.data.template_size, config.data.search_size = template_size, 2 * template_size
  config.lock()
  return config


def _bert_dir(path, eps: float = 1e-12) -> str:
  """A Hugging Face BERT directory with the micro config's text sizes (1 layer, 32 wide)."""
  rng = np.random.default_rng(0)
  r = lambda *shape: rng.normal(0.0, 0.2, shape).astype(np.float32)
  t = micro_config().model.text
  h, i = t.hidden_size, t.intermediate_size
  sd = {"embeddings.word_embeddings.weight": r(t.vocab_size, h),
        "embeddings.position_embeddings.weight": r(t.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": r(t.type_vocab_size, h),
        "embeddings.LayerNorm.weight": 1 + r(h), "embeddings.LayerNorm.bias": r(h),
        "pooler.dense.weight": r(h, h), "pooler.dense.bias": r(h)}
  for name in ("self.query", "self.key", "self.value", "output.dense"):
    sd[f"encoder.layer.0.attention.{name}.weight"] = r(h, h)
    sd[f"encoder.layer.0.attention.{name}.bias"] = r(h)
  sd["encoder.layer.0.intermediate.dense.weight"] = r(i, h)
  sd["encoder.layer.0.intermediate.dense.bias"] = r(i)
  sd["encoder.layer.0.output.dense.weight"] = r(h, i)
  sd["encoder.layer.0.output.dense.bias"] = r(h)
  for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
    sd[f"encoder.layer.0.{ln}.weight"], sd[f"encoder.layer.0.{ln}.bias"] = 1 + r(h), r(h)
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
    json.dump(dict(model_type="bert", vocab_size=t.vocab_size, hidden_size=h,
                   num_hidden_layers=t.num_layers, num_attention_heads=t.num_heads,
                   intermediate_size=i, hidden_act="gelu", layer_norm_eps=eps,
                   max_position_embeddings=t.max_position_embeddings,
                   type_vocab_size=t.type_vocab_size, pad_token_id=0), f)
  safetensors.numpy.save_file(sd, os.path.join(path, "model.safetensors"))
  return str(path)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  """{name: directory}: a converted ViT (micro grids), one converted for 48/96 crops (grids 3
  and 6), a Hugging Face BERT directory, that directory converted, and a converted OSTrack-like
  backbone (a ViT converted as 'vit' but used where a tracker is expected is a kind error)."""
  root = tmp_path_factory.mktemp("sources")
  sd = reference.random_vit_state_dict(np.random.default_rng(0), D, 2, 16, grid=3)
  vit_src = str(root / "vit.safetensors")
  safetensors.numpy.save_file(sd, vit_src)
  out = {"vit": str(root / "vit"), "vit_48": str(root / "vit_48"),
         "bert": _bert_dir(root / "bert"), "text": str(root / "text"),
         "bert_eps": _bert_dir(root / "bert_eps", eps=1e-5), "text_eps": str(root / "text_eps")}
  convert.convert("vit", vit_src, out["vit"], micro_config())
  convert.convert("vit", vit_src, out["vit_48"], _config(template_size=48))
  convert.convert("text", out["bert"], out["text"])
  convert.convert("text", out["bert_eps"], out["text_eps"])
  return out


def test_vit_and_text_replace_the_fresh_init(sources, micro_model):
  fresh = micro_model.fresh_params
  params, report = pretrained.apply_pretrained(
      _config(vit=sources["vit"], text=sources["bert"]), fresh)
  vit_flat, _ = checkpoint_io.load_converted(sources["vit"])
  np.testing.assert_array_equal(params["blocks_1"]["mlp"]["fc1"]["kernel"],
                                vit_flat["blocks_1/mlp/fc1/kernel"])
  assert params["text_encoder"]["layer_0"]["attn"]["query"]["kernel"].shape == (D, D)
  for new, old in zip(jax.tree.leaves(params), jax.tree.leaves(fresh)):
    assert new.sharding == old.sharding and new.dtype == old.dtype
  assert jax.tree.structure(params) == jax.tree.structure(fresh)

  n_params = len(jax.tree.leaves(fresh))
  assert len(report.loaded) + len(report.fresh) == n_params
  assert report.loaded["text_encoder/layer_0/mlp/fc1/kernel"] == (
      "init.text: encoder.layer.0.intermediate.dense.weight")
  assert report.sources == {"init.vit": sources["vit"], "init.text": sources["bert"]}
  assert "cls_token" in report.ignored["init.vit"]
  assert "pooler.dense.weight" in report.ignored["init.text"]
  assert "decoder/query_embed" in report.fresh and "head/score_out/bias" in report.fresh
  text = "\n".join(report.lines())
  assert f"{len(report.loaded)} params loaded, {len(report.fresh)} newly initialised" in text
  assert f"loaded from init.vit={sources['vit']} (38):" in text
  assert "    blocks_{0-1}/attn/query/{bias,kernel}\n" in text
  assert "    emims_{0-1}/{alpha_ca,alpha_gm}\n" in text
  assert "cls_token: class token" in text


def test_collapse():
  assert pretrained.collapse(
      ["blocks_0/n/scale", "blocks_1/n/scale", "blocks_0/n/bias", "blocks_1/n/bias",
       "blocks_3/n/bias", "norm/scale", "logit_scale", "pooler.dense.bias", "cls_token"]) == [
           "blocks_{0-1,3}/n/bias", "blocks_{0-1}/n/scale", "cls_token", "logit_scale",
           "norm/scale", "pooler.dense.bias"]
  assert pretrained.collapse(["a_0/x/k", "a_1/x/k", "a_0/x/b", "a_1/x/b"]) == ["a_{0-1}/x/{b,k}"]
  assert pretrained.collapse(["b.0.x", "b.1.x", "b.2.x", "b.4.x"]) == ["b.{0-2,4}.x"]


def test_text_checkpoint_is_the_fallback_and_converted_text_loads(sources, micro_model):
  _, report = pretrained.apply_pretrained(_config(text_checkpoint=sources["bert"]),
                                          micro_model.fresh_params)
  assert set(report.sources) == {"model.text.checkpoint"}
  a, _ = pretrained.load_pretrained(_config(text_checkpoint=sources["bert"]),
                                    _shapes(micro_model))
  # init.text (a converted directory) takes the place of text.checkpoint.
  b, report = pretrained.load_pretrained(
      _config(text_checkpoint=sources["bert_eps"], text=sources["text"]), _shapes(micro_model))
  assert set(report.sources) == {"init.text"}
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _shapes(micro_model):
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  return {k: tuple(v.shape) for k, v in
          traverse_util.flatten_dict(micro_model.fresh_params, sep="/").items()}


def test_other_grids_are_resampled_on_load(sources, micro_model):
  values, report = pretrained.load_pretrained(_config(vit=sources["vit_48"]),
                                              _shapes(micro_model))
  assert report.resampled == {"pos_embed_z/pos_embed": "(3, 3) -> (2, 2)",
                              "pos_embed_x/pos_embed": "(6, 6) -> (4, 4)"}
  flat, _ = checkpoint_io.load_converted(sources["vit_48"])
  np.testing.assert_allclose(values["pos_embed_x/pos_embed"],
                             posemb.resample_grid(flat["pos_embed_x/pos_embed"], (4, 4)))


def test_every_problem_of_every_source_in_one_error(sources, micro_model, tmp_path):
  config = _config(vit=sources["text"], tracker=str(tmp_path / "nowhere"),
                   text=sources["text_eps"])
  with pytest.raises(ValueError) as err:
    pretrained.load_pretrained(config, _shapes(micro_model))
  msg = str(err.value)
  for part in ((f"init.vit={sources['text']!r} holds weights converted with --kind text, "
                "expected vit"),
               f"init.tracker={str(tmp_path / 'nowhere')!r} is not a directory",
               ("converted from a text encoder with layer_norm_eps=1e-05, the config has "
                "model.text.layer_norm_eps=1e-12"),
               "text_encoder/layer_0/attn/key/bias is given by both init.vit and init.text"):
    assert part in msg, part

  with pytest.raises(ValueError, match="layer_norm_eps expected 1e-12, config.json gives 1e-05"):
    pretrained.load_pretrained(_config(text=sources["bert_eps"]), _shapes(micro_model))


def test_overlapping_sources_are_an_error(sources, micro_model, tmp_path):
  flat, report = checkpoint_io.load_converted(sources["vit"])
  flat["head/score_out/bias"] = np.zeros(7, np.float32)  # and a wrong shape
  checkpoint_io.save_converted(str(tmp_path / "tracker"), flat, dict(report, kind="ostrack"))
  with pytest.raises(ValueError) as err:
    pretrained.load_pretrained(_config(vit=sources["vit"], tracker=str(tmp_path / "tracker")),
                               _shapes(micro_model))
  msg = str(err.value)
  assert "blocks_0/norm1/scale is given by both init.vit and init.tracker" in msg
  assert "head/score_out/bias has shape (7,), the model (1,)" in msg


def test_trainer_logs_and_writes_the_report(sources, micro_model, tmp_path, caplog):
  from lgtrack_jax.training import trainer  # pylint: disable=import-outside-toplevel
  with caplog.at_level(logging.INFO):
    params = trainer.load_pretrained_params(_config(vit=sources["vit"]),
                                            micro_model.fresh_params, str(tmp_path))
  assert "pretrained init: 38 params loaded" in caplog.text
  with open(tmp_path / "init_report.json", encoding="utf-8") as f:
    saved = json.load(f)
  assert saved["loaded"]["norm/bias"] == "init.vit: norm.bias"
  assert len(saved["fresh"]) == len(jax.tree.leaves(params)) - 38


@pytest.mark.slow
def test_training_starts_from_the_converted_vit(sources, tmp_path):
  """A real run: with lr 0 the saved params are the converted ViT's."""
  from input_pipeline import synthetic  # pylint: disable=import-outside-toplevel
  from lgtrack_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.training import trainer  # pylint: disable=import-outside-toplevel
  data = str(tmp_path / "data")
  synthetic.generate(data, num_train=6, num_test=2, num_frames=20, seed=0)
  config = _config(vit=sources["vit"])
  config.unlock()
  config.data.root = data
  config.train.steps, config.optim.lr = 1, 0.0
  config.lock()
  workdir = str(tmp_path / "run")
  trainer.train(config, workdir)
  params, _ = ckpt_lib.load_params(workdir, config)
  flat, _ = checkpoint_io.load_converted(sources["vit"])
  np.testing.assert_array_equal(params["blocks_0"]["attn"]["query"]["kernel"],
                                flat["blocks_0/attn/query/kernel"])
  assert os.path.isfile(os.path.join(workdir, "init_report.json"))
