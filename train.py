"""Trains LGTrack.

  python train.py --config configs/tiny.py --workdir runs/demo/train [--config.optim.lr=1e-4]

Rerunning the same command resumes from the latest checkpoint in `<workdir>/checkpoints`; a
rerun with another config (or seed) is refused, naming the keys that differ, unless
`--allow_config_change` is given. A user error (a bad flag or config key, a config that does
not fit the workdir, a loss that became NaN) is one line on stderr, `train.py: error: ...`,
status 1.
"""

from absl import app, flags
from ml_collections import config_flags

from lgtrack_jax.training import distributed
from lgtrack_jax import cli
from lgtrack_jax.training.errors import TrainingError

_PROG = "train.py"
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and TensorBoard.")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume even though the config (or seed) differs from the one the workdir's run was started "
    "with; the change is recorded in <workdir>/config_changes.jsonl.")


def main(argv):
  if len(argv) > 1:
    cli.fail(_PROG, f"unexpected arguments: {' '.join(argv[1:])}", status=1)
  distributed.maybe_initialize()
  # pylint: disable=import-outside-toplevel
  from input_pipeline.sources.base import DataError
  from lgtrack_jax.training import trainer
  try:
    trainer.train(_CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
  except (TrainingError, DataError) as e:
    cli.fail(_PROG, e, status=1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser(_PROG, _CONFIG, ("config", "workdir"),
                                                status=1))
