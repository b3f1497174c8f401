"""Training: loss goes down, resume after SIGTERM is exact, a non-finite state is never saved,
metrics.jsonl holds each step once after a resume, a resume must keep the config and seed, bad
config keys are one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from lgtrack_jax import checkpoint as ckpt_lib
from lgtrack_jax import config_io
from lgtrack_jax.training import config_record, metrics_writer, seeds, trainer
from lgtrack_jax.training import step as step_lib
from lgtrack_jax.training.errors import ConfigError, NonFiniteError
from tests.conftest import micro_config, synthetic_root, write_micro_config_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return synthetic_root(tmp_path_factory, num_train=6, num_test=2, num_frames=20, seed=0)


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
  # step * global_batch): an error, raised before anything is compiled, even where config
  # changes are allowed.
  config.train.steps, config.train.global_batch = 3, 4
  with pytest.raises(ConfigError, match="train.global_batch: 8 -> 4"):
    trainer.train(config, target)
  with pytest.raises(ConfigError, match="global_batch=8"):
    trainer.train(config, target, allow_config_change=True)


def test_non_finite_error_names_the_first_bad_step_and_the_last_checkpoint():
  """The check on its own (the loop's test is below): flags read together, the first bad step
  named with its terms, and the last checkpoint saved before it, or none."""
  nan = np.float32("nan")

  def metrics(ok, **terms):
    values = dict({"loss": 1.0, "grad_norm": 2.0, "param_norm": 3.0, "lr": 1e-3}, **terms)
    return {"all_finite": np.bool_(ok), **{k: np.float32(v) for k, v in values.items()}}

  # pylint: disable=protected-access
  trainer._check_finite([(1, metrics(True)), (2, metrics(True))], None, "d")
  pending = [(1, metrics(True)), (2, metrics(False, param_norm=nan, lr=nan)),
             (3, metrics(False, loss=nan))]
  with pytest.raises(NonFiniteError, match=r"^training became non-finite at step 2 \(loss 1, "
                     r"grad_norm 2, param_norm nan; also non-finite: lr\); nothing non-finite was "
                     r"saved; no checkpoint was saved before it \(d\)$"):
    trainer._check_finite(pending, None, "d")
  with pytest.raises(NonFiniteError, match=r"the last finite checkpoint is step 3 in d$"):
    trainer._check_finite(pending[2:], 3, "d")


def test_a_non_finite_state_is_never_saved(config, data_root, tmp_path, monkeypatch):
  """The loss turns NaN at step 5 and the state with it; checkpoints every 3 steps, logs every
  4: step 6 is a save step and no log step, so the flags are read there and nothing is saved;
  the error names step 5 and checkpoint 3, the last one saved."""
  config = _config(config, data_root, steps=8, log_every=4, checkpoint_every=3)
  first_bad_sample = 4 * config.train.global_batch  # step 5 draws samples 4B .. 5B - 1
  make_loss_fn = step_lib.make_loss_fn

  def nan_from_step_5(model, cfg):
    loss_fn = make_loss_fn(model, cfg)

    def loss_with_nan(params, batch):
      loss, metrics = loss_fn(params, batch)
      # Multiplied, not replaced: the gradients (so the new params) are NaN too.
      loss = loss * jnp.where(jnp.max(batch["index"]) >= first_bad_sample, jnp.nan, 1.0)
      return loss, dict(metrics, loss=loss)

    return loss_with_nan

  monkeypatch.setattr(step_lib, "make_loss_fn", nan_from_step_5)
  workdir = str(tmp_path / "nan5")
  with pytest.raises(NonFiniteError, match=r"non-finite at step 5 \(loss nan, grad_norm nan, "
                     r"param_norm nan\); nothing non-finite was saved; the last finite "
                     r"checkpoint is step 3 in "):
    trainer.train(config, workdir)
  ckpt = ckpt_lib.Checkpointer(workdir)
  assert ckpt.manager.all_steps() == [3]
  ckpt.close()
  assert [r["step"] for r in _read_metrics(workdir)] == [4]  # step 8 never came
  assert "all_finite" not in _read_metrics(workdir)[0]


@pytest.fixture(scope="module")
def trained_workdir(data_root, tmp_path_factory):
  """(config, workdir) of a finished 8-step micro run: checkpoints 4 and 8, steps 1..8 logged.
  (8 steps, as test_sigterm_...: the same step function, compiled once for both.)"""
  config = _config(micro_config(), data_root, steps=8, log_every=1, checkpoint_every=4)
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  trainer.train(config, workdir)
  return config, workdir


def _copy(trained_workdir, tmp_path):
  config, workdir = trained_workdir
  copy = str(tmp_path / "run")
  shutil.copytree(workdir, copy)
  return config.copy_and_resolve_references(), copy


@pytest.mark.slow  # ~18 s; test_drop_rows_after covers the rewrite in the default suite
def test_resume_logs_each_step_once(trained_workdir, tmp_path):
  """A run killed (SIGKILL) after logging steps 5 to 8 but before checkpoint 8 was written
  (simulated: checkpoint 8 removed, a half-written row appended) resumes at step 4: steps 5 to 8
  are logged again, and metrics.jsonl holds each step once, with the new values."""
  config, workdir = _copy(trained_workdir, tmp_path)
  first = _read_metrics(workdir)
  assert [r["step"] for r in first] == list(range(1, 9))
  shutil.rmtree(os.path.join(workdir, "checkpoints", "8"))
  with open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8") as f:
    f.write('{"step": 9, "loss": 12')  # torn by the kill
  trainer.train(config, workdir)  # the same config: resumes
  rows = _read_metrics(workdir)
  assert [r["step"] for r in rows] == list(range(1, 9))
  for a, b in zip(rows, first):  # an exact resume: the re-logged steps equal the first run's
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 8


def test_drop_rows_after(tmp_path):
  path = str(tmp_path / "m.jsonl")
  assert metrics_writer.drop_rows_after(path, 3) == 0  # no file yet: nothing to do
  lines = ['{"step": 1}', '{"step": 3}', '{"step": 4}', '{"step": 2}', '{"ste']
  (tmp_path / "m.jsonl").write_text("\n".join(lines))
  assert metrics_writer.drop_rows_after(path, 3) == 2
  assert (tmp_path / "m.jsonl").read_text() == '{"step": 1}\n{"step": 3}\n{"step": 2}\n'
  assert not os.path.exists(path + ".tmp")


def test_resume_refuses_another_config_naming_the_keys(trained_workdir, tmp_path):
  config, workdir = _copy(trained_workdir, tmp_path)
  record = config_record.read(workdir)
  assert record["config"]["optim"]["lr"] == config.optim.lr
  assert record["sha256"] == config_io.sha256(config)
  config.optim.lr = 5e-4
  config.seed = 3
  config.train.log_every = 2  # free to change: not named, not refused on its own
  with pytest.raises(ConfigError, match=r"resumes at step 8 with a config that differs .*: "
                     r"optim.lr: 0.001 -> 0.0005, seed: 0 -> 3; .*--allow_config_change"):
    trainer.train(config, workdir)
  config.optim.lr, config.seed = 1e-3, 0
  trainer.train(config, workdir)  # a free key alone: allowed (nothing left to train), recorded
  assert config_record.read(workdir)["config"]["train"]["log_every"] == 2
  # More than 5 keys: 5 named, the rest counted.
  for k in ("focal_weight", "l1_weight", "giou_weight", "contrastive_weight", "focal_alpha",
            "focal_beta"):
    config.loss[k] = 0.5
  with pytest.raises(ConfigError, match=r": loss.contrastive_weight: 1.0 -> 0.5, .*, "
                     r"loss.giou_weight: 2.0 -> 0.5 \(and 1 more\); "):
    trainer.train(config, workdir)


def test_resume_refuses_another_seed_in_an_old_workdir(trained_workdir, tmp_path):
  """A workdir from before config.json: the checkpoint's sample-stream seed is still checked."""
  config, workdir = _copy(trained_workdir, tmp_path)
  os.remove(os.path.join(workdir, config_record.FILE))
  config.train.seed = 7
  with pytest.raises(ConfigError, match=r"checkpoint 8 .* sample stream of seed 0, this run's "
                     r"is 7"):
    trainer.train(config, workdir)


@pytest.mark.slow  # ~6 s: a further resume of the shared workdir
def test_allow_config_change_resumes_and_records_it(trained_workdir, tmp_path):
  """The flag lets a changed config resume (here at the end: no step left, so nothing compiles)
  and records it: config.json is the new config, config_changes.jsonl says what changed where."""
  config, workdir = _copy(trained_workdir, tmp_path)
  old_sha = config_record.read(workdir)["sha256"]
  config.optim.lr = 5e-4
  config.seed = 2
  trainer.train(config, workdir, allow_config_change=True)
  record = config_record.read(workdir)
  assert record["config"]["optim"]["lr"] == 5e-4 and record["sha256"] != old_sha
  with open(os.path.join(workdir, config_record.CHANGES_FILE), encoding="utf-8") as f:
    changes = [json.loads(line) for line in f]
  assert changes == [{"step": 8, "changes": {"optim.lr": [1e-3, 5e-4], "seed": [0, 2]}}]
  trainer.train(config, workdir)  # the recorded config now: no flag needed
  meta_file = os.path.join(workdir, "checkpoints", "8", "meta", "metadata")
  with open(meta_file, encoding="utf-8") as f:
    meta = json.load(f)
  assert meta["config_sha256"] == old_sha and (meta["seed"], meta["data_seed"]) == (0, 0)


def test_train_py_refuses_another_config_in_one_line(trained_workdir, tmp_path):
  _, workdir = _copy(trained_workdir, tmp_path)
  cfg_file = write_micro_config_file(tmp_path)
  common = [sys.executable, os.path.join(REPO, "train.py"), f"--config={cfg_file}",
            f"--workdir={workdir}", f"--config.data.root={trained_workdir[0].data.root}",
            "--config.train.steps=8", "--config.train.log_every=1",
            "--config.train.checkpoint_every=4"]
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.run(common + ["--config.optim.lr=0.002"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("train.py: error: ")]
  assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr[-3000:]
  assert "optim.lr: 0.001 -> 0.002" in errors[0] and "Traceback" not in proc.stderr


def test_one_seed_derives_the_others():
  config = tiny.get_config()
  assert config.train.seed is None
  assert seeds.resolve(config) == seeds.Seeds(init=0, data=0, synthetic=0)
  config.unlock()
  config.seed = 4
  assert seeds.resolve(config) == seeds.Seeds(init=4, data=4, synthetic=4)
  config.train.seed = 9  # an old config's explicit data seed still overrides
  assert seeds.resolve(config) == seeds.Seeds(init=4, data=9, synthetic=4)


def test_unknown_config_key_is_an_error(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "train.py"), "--config=configs/tiny.py",
       f"--workdir={tmp_path}", "--config.optim.lrr=1e-4"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "lrr" in proc.stderr and "Did you mean" in proc.stderr
  # One line, no traceback.
  assert proc.stderr.strip().splitlines()[-1].startswith("train.py: error: a --config.* "), \
      proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


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


def test_preemption_fallback_agrees_at_synced_steps(monkeypatch):
  """Several processes without JAX's preemption service: each process's SIGTERM flag is
  all-gathered on log and checkpoint steps only, so all stop at the same one. (The service's
  path runs for real in test_multiprocess.py.)"""
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  others = {"requested": 0}
  monkeypatch.setattr(multihost_utils, "process_allgather",
                      lambda x: np.array([int(x), others["requested"]]))
  before = signal.getsignal(signal.SIGTERM)
  sync_manager = trainer._arm_preemption_sync(0)  # pylint: disable=protected-access
  assert not sync_manager  # no jax.distributed: the fallback
  preemption = trainer._Preemption(sync_manager)  # pylint: disable=protected-access
  try:
    assert not preemption.reached(1, host_synced=True)
    others["requested"] = 1  # SIGTERM reached the other process only
    assert not preemption.reached(2, host_synced=False)
    assert preemption.reached(3, host_synced=True)
    others["requested"] = 0
    os.kill(os.getpid(), signal.SIGTERM)  # this process's own handler
    assert preemption.requested and preemption.reached(4, host_synced=True)
  finally:
    preemption.restore()
  assert signal.getsignal(signal.SIGTERM) is before
