"""Training: loss goes down, resume after SIGTERM is exact, NaN stops the run, bad config keys."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from input_pipeline import synthetic
from lgtrack_jax.training import checkpoint as ckpt_lib
from lgtrack_jax.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, num_train=6, num_test=2, num_frames=20, seed=0)
  return root


def _config(config, data_root, **train):
  config.unlock()
  config.data.root = data_root
  for k, v in train.items():
    config.train[k] = v
  config.lock()
  return config


def _read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_training_reduces_loss_and_logs(config, data_root, tmp_path):
  config = _config(config, data_root, steps=12, log_every=3, checkpoint_every=6)
  config.unlock()
  config.optim.lr = 3e-3
  config.train.profile_steps = 2
  workdir = str(tmp_path / "run")
  trainer.train(config, workdir)
  rows = _read_metrics(workdir)
  assert [r["step"] for r in rows] == [3, 6, 9, 12]
  for key in ("loss", "focal", "l1", "giou", "contrastive", "lr", "examples_per_s", "grad_norm"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert rows[-1]["loss"] < rows[0]["loss"]
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 12
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
  traces = [f for _, _, files in os.walk(os.path.join(workdir, "profile")) for f in files]
  assert any(f.endswith((".xplane.pb", ".trace.json.gz")) for f in traces), traces


def test_sigterm_saves_and_rerun_resumes_exactly(config, data_root, tmp_path):
  """Kill a run with SIGTERM mid-way; the rerun ends where an uninterrupted run ends."""
  steps = 8
  config = _config(config, data_root, steps=steps, log_every=1, checkpoint_every=100)
  reference = str(tmp_path / "reference")
  trainer.train(config, reference)

  interrupted = str(tmp_path / "interrupted")
  overrides = [f"--config.data.root={data_root}", f"--config.train.steps={steps}",
               "--config.train.log_every=1", "--config.train.checkpoint_every=100"]
  cfg_file = tmp_path / "micro.py"
  cfg_file.write_text("from tests.conftest import micro_config\n"
                      "def get_config(arg=None):\n  return micro_config()\n")
  env = dict(os.environ, PYTHONPATH=REPO)
  log_path = tmp_path / "interrupted.log"
  with open(log_path, "w", encoding="utf-8") as log:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "train.py"), f"--config={cfg_file}",
         f"--workdir={interrupted}", *overrides], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=log)
    # The progress bar appears once the SIGTERM handler is installed, while the first step is
    # still compiling: the signal lands mid-run however fast the steps are.
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      if f"/{steps} [" in log_path.read_text(encoding="utf-8", errors="replace"):
        break
      time.sleep(0.1)
    assert proc.poll() is None, log_path.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
  err = log_path.read_text(encoding="utf-8", errors="replace")
  assert proc.returncode == 0, err[-3000:]
  saved = ckpt_lib.Checkpointer(interrupted).latest_step()
  assert saved is not None and 1 <= saved < steps, (saved, err[-2000:])

  trainer.train(config, interrupted)  # the same command again
  rows = _read_metrics(interrupted)
  assert rows[-1]["step"] == steps
  ref_rows = {r["step"]: r for r in _read_metrics(reference)}
  for r in rows:  # every logged step, before and after the restart, matches the reference
    np.testing.assert_allclose(r["loss"], ref_rows[r["step"]]["loss"], rtol=1e-5, err_msg=r)

  a, step_a = ckpt_lib.load_params(reference, config)
  b, step_b = ckpt_lib.load_params(interrupted, config)
  assert step_a == step_b == steps
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # ~70 s: three short training runs (test_sigterm_... covers resuming)
def test_init_from_loads_weights_only_and_resume_needs_the_same_batch(config, data_root,
                                                                    tmp_path):
  """`init_from` starts a new run (step 0, fresh optimizer) from another run's weights."""
  source = str(tmp_path / "source")
  trainer.train(_config(config, data_root, steps=2, log_every=1, checkpoint_every=100), source)
  config.unlock()
  config.init_from = source
  config.optim.lr = 0.0  # the new run must then end exactly on the source weights
  target = str(tmp_path / "target")
  trainer.train(config, target)
  assert [r["step"] for r in _read_metrics(target)] == [1, 2]
  a, _ = ckpt_lib.load_params(source, config)
  b, step = ckpt_lib.load_params(target, config)
  assert step == 2
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  # Resuming with another global batch would replay or skip data (the stream position is
  # step * global_batch): an error, raised before anything is compiled.
  config.train.steps, config.train.global_batch = 3, 4
  with pytest.raises(ValueError, match="global_batch=8"):
    trainer.train(config, target)


def test_nan_loss_stops_with_a_clear_message(config, data_root, tmp_path):
  config = _config(config, data_root, steps=2, log_every=1)
  config.unlock()
  config.optim.lr = float("nan")
  with pytest.raises(FloatingPointError, match="loss is nan at step 2"):
    trainer.train(config, str(tmp_path / "nan"))


def test_unknown_config_key_is_an_error(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "train.py"), "--config=configs/tiny.py",
       f"--workdir={tmp_path}", "--config.optim.lrr=1e-4"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "lrr" in proc.stderr and "Did you mean" in proc.stderr


def test_relative_data_root_is_where_training_and_eval_look(config, tmp_path, monkeypatch):
  """`make demo` passes a relative root (runs/demo/data): training generates and reads the data
  there, and eval finds it there."""
  from input_pipeline import mixture, sources  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(tmp_path)
  config.unlock()
  config.data.root = os.path.join("runs", "demo", "data")
  trainer.ensure_synthetic_data(config)
  assert os.path.exists(os.path.join("runs", "demo", "data", "COMPLETE"))
  assert [s.root for s in mixture.train_sources(config.data)] == [config.data.root]
  assert len(sources.load("synthetic", config.data.root, "test")) == config.data.synthetic_test
