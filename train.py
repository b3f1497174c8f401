"""Trains LGTrack.

  python train.py --config configs/tiny.py --workdir runs/demo/train [--config.optim.lr=1e-4]

Rerunning the same command resumes from the latest checkpoint in `<workdir>/checkpoints`.
"""

from absl import app, flags
from ml_collections import config_flags

from lgtrack_jax.training import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and TensorBoard.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.maybe_initialize()
  from lgtrack_jax.training import trainer  # pylint: disable=import-outside-toplevel
  trainer.train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
