"""Trains LGTrack.

  python train.py --config configs/tiny.py --workdir runs/demo/train [--config.optim.lr=1e-4]

Rerunning the same command resumes from the latest checkpoint in `<workdir>/checkpoints`; a
rerun with another config (or seed) is refused, naming the keys that differ, unless
`--allow_config_change` is given. A user error (a bad flag or config key, a config that does
not fit the workdir, a loss that became NaN) is one line on stderr, `train.py: error: ...`,
status 1.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from lgtrack_jax.training import distributed
from lgtrack_jax.training.errors import TrainingError, one_line

_PROG = "train.py"
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and TensorBoard.")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume even though the config (or seed) differs from the one the workdir's run was started "
    "with; the change is recorded in <workdir>/config_changes.jsonl.")


def _fail(message) -> None:
  print(f"{_PROG}: error: {one_line(message)}", file=sys.stderr)
  sys.exit(1)


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    rest = flags.FLAGS(argv)
    for name in ("config", "workdir"):
      if flags.FLAGS[name].value is None:
        raise flags.Error(f"--{name} is required")
    _CONFIG.value.get("train")  # config_flags defers a config file's load error to first use
  except OSError as e:  # its last line says why: no such file, a syntax error, ...
    _fail(f"--config: {str(e.__cause__ or e).strip().splitlines()[-1].strip()}")
  except flags.Error as e:
    _fail(e)
  except (AttributeError, KeyError) as e:
    # ml_collections raises AttributeError(KeyError(message)); a KeyError's str() is a repr.
    while e.args and isinstance(e.args[0], BaseException):
      e = e.args[0]
    _fail(f"a --config.* override names no field of the config: "
          f"{e.args[0] if isinstance(e, KeyError) and e.args else e}")
  return rest


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  distributed.maybe_initialize()
  # pylint: disable=import-outside-toplevel
  from input_pipeline.sources.base import DataError
  from lgtrack_jax.training import trainer
  try:
    trainer.train(_CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
  except (TrainingError, DataError) as e:
    _fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
