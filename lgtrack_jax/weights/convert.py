r"""Converts pretrained weights into a params sub-tree of our model, for `config.model.init`.

  python -m lgtrack_jax.weights.convert --kind vit --src mae_pretrain_vit_base.pth \
    --dst /ckpt/mae_vit_b16 --config configs/lgtrack_b256.py [--config.model.depth=24 ...]
  python -m lgtrack_jax.weights.convert --kind text --src /models/bert-base-uncased \
    --dst /ckpt/bert_base
  python -m lgtrack_jax.weights.convert --kind ostrack --config configs/ostrack_b256.py \
    --src OSTrack_ep0300.pth.tar --dst /ckpt/ostrack_b256

kinds:
  vit      timm / MAE / DeiT ViT (`*.safetensors`, or a PyTorch `.pth`/`.bin`)
  text     Hugging Face BERT / RoBERTa / MiniLM directory (safetensors or pytorch_model*.bin)
  ostrack  OSTrack tracker checkpoint (`.pth.tar` with its 'net' state dict, or safetensors);
           with --config configs/ostrack_b256.py all of it loads (`eval.py --weights`)
The config (required for vit and ostrack; optional for text, whose architecture it then checks)
decides the model sizes the weights must fit and the position-embedding grids
(data.template_size, data.search_size). `--dst` receives
`params.safetensors` (float32 arrays keyed by our '/'-joined param paths) and `report.json`
(every loaded param with its source tensor, every ignored source tensor with the reason, our
params of the converted part left at their fresh init). PyTorch files are read with
`torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import json
import os

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from lgtrack_jax import cli
from lgtrack_jax.weights import checkpoint_io

KINDS = ("vit", "text", "ostrack")


def define_flags() -> dict:
  """The command line, defined only when this module runs as a program (`__main__`): tests and
  other code import `convert` without claiming flag names such as --config."""
  return {
      "kind": flags.DEFINE_enum("kind", None, KINDS, "What --src is."),
      "src": flags.DEFINE_string("src", None, "Checkpoint file (vit, ostrack) or directory "
                                 "(text)."),
      "dst": flags.DEFINE_string("dst", None, "Output directory."),
      "config": config_flags.DEFINE_config_file(
          "config", None, "Experiment config the weights must fit (e.g. "
          "configs/lgtrack_b256.py); required for --kind vit and ostrack.", lock_config=True),
  }


def convert(kind: str, src: str, dst: str, config: ml_collections.ConfigDict | None = None
            ) -> dict:
  """Converts `src` and writes `dst/params.safetensors` and `dst/report.json`.

  Args:
    kind: one of `KINDS`.
    src: checkpoint file (vit, ostrack) or Hugging Face directory (text).
    dst: output directory (created).
    config: experiment config; required for vit and ostrack. For text it is optional and, when
      given, the checkpoint must match its `model.text` architecture fields.

  Returns:
    The report written to report.json.
  """
  # Imported here: each pulls in jax and flax, and the CLI should fail fast on bad flags.
  from lgtrack_jax.weights import hf_text, ostrack, pretrained, vit  # pylint: disable=import-outside-toplevel
  if kind == "text":
    expected = pretrained.text_fields(config) if config is not None else None
    flat, report = hf_text.convert_text_dir(src, expected)
  elif config is None:
    raise ValueError(f"--kind {kind} needs a config (model sizes and crop sizes)")
  elif kind == "vit":
    flat, report = vit.convert_vit_file(src, config)
  elif kind == "ostrack":
    flat, report = ostrack.convert_ostrack_file(src, config)
  else:
    raise ValueError(f"kind {kind!r} is not one of {KINDS}")
  checkpoint_io.save_converted(dst, flat, report)
  return report


PROG = "lgtrack_jax.weights.convert"


def main(argv, flag_values: dict) -> None:
  if len(argv) > 1:
    cli.fail(PROG, f"unexpected arguments: {' '.join(argv[1:])}")
  kind, src, dst, config = (flag_values[k].value for k in ("kind", "src", "dst", "config"))
  if config is None and kind != "text":
    cli.fail(PROG, f"--kind {kind} needs --config (the model and crop sizes the weights must "
             "fit), e.g. --config configs/lgtrack_b256.py")
  try:
    report = convert(kind, src, dst, config)
  except (ValueError, OSError) as e:  # a missing or unreadable file, weights that do not fit
    cli.fail(PROG, e)
  summary = {"kind": report["kind"], "dst": os.path.abspath(dst),
             "loaded": len(report["loaded"]), "ignored": report["ignored"],
             "not_loaded": report["not_loaded"]}
  print(json.dumps(summary, indent=1))


if __name__ == "__main__":
  _FLAGS = define_flags()
  app.run(lambda argv: main(argv, _FLAGS),
          flags_parser=cli.flags_parser(PROG, _FLAGS["config"], ("kind", "src", "dst")))
