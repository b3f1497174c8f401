"""Two real JAX processes on this CPU machine, as on a 2-host pod: 4 simulated CPU devices each,
`jax.distributed` through a local coordinator, gloo cross-process collectives.

- the sharded train step, each process feeding only its half of every global batch, equals the
  single-device step (multiprocess_worker.py);
- `train.py` itself (distributed.maybe_initialize from the environment, the tf.data pipeline's
  host slices, Orbax checkpoints written collectively, logs from process 0) ends where a
  one-process run ends, and its checkpoint restores on one device (slow);
- SIGTERM to one of the two `train.py` processes: both save the same step and exit, and the
  resumed pair ends bitwise where an uninterrupted pair ends (slow);
- `eval.py` (the static tracker, and LGTrack from a checkpoint loaded on each process's first
  device) splits the sequences over the processes and process 0 alone scores: the same
  metrics.json and result files as one process.

train.py and eval.py get the gloo CPU collectives as jax 0.10's default
(`jax_cpu_collectives_implementation`); the worker sets it explicitly.

Each pair runs under a deadline; when one process fails the other is killed, so a collective
waiting for a dead peer cannot hang the suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from input_pipeline import sources, synthetic
from lgtrack_jax.evaluation import results, runner
from lgtrack_jax import checkpoint as ckpt_lib
from lgtrack_jax.training import config_record, distributed
from tests.conftest import (make_micro_workdir, micro_config, write_micro_config_file,
                            xla_flags_with_cpu_devices)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_PROCESSES = 2


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
  """A worker's environment: 4 CPU devices, no inherited multi-host settings."""
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_", "LGTRACK_DISTRIBUTED", "SLURM_", "OMPI_", "TPU_"))}
  env.update(XLA_FLAGS=xla_flags_with_cpu_devices(4), JAX_PLATFORMS="cpu",
             PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **extra)
  return env


class _Processes:
  """NUM_PROCESSES processes started together; `wait` collects them under one deadline."""

  def __init__(self, tmp_path, name: str, command, env_of, timeout: float):
    self.logs = [(tmp_path / f"{name}{i}.out", tmp_path / f"{name}{i}.err")
                 for i in range(NUM_PROCESSES)]
    self.deadline = time.time() + timeout
    self.procs = []
    self.outputs: list[str] = []
    for i, (out, err) in enumerate(self.logs):
      with open(out, "w", encoding="utf-8") as o, open(err, "w", encoding="utf-8") as e:
        self.procs.append(subprocess.Popen(command(i), cwd=REPO, env=env_of(i), stdout=o,
                                           stderr=e, stdin=subprocess.DEVNULL))

  def _report(self, why: str) -> str:
    parts = [why]
    for i, (out, err) in enumerate(self.logs):
      lines = [l for l in err.read_text(errors="replace").splitlines()
               if not l.startswith("[Gloo]") and "spmd_partitioner" not in l]
      parts.append(f"--- process {i} (rc {self.procs[i].returncode}) stderr tail:\n"
                   + "\n".join(lines[-40:]))
    return "\n".join(parts)

  def kill(self):
    for p in self.procs:
      if p.poll() is None:
        p.kill()
        p.wait()

  def wait(self) -> list[str]:
    """Every process's stdout; fails (after killing the rest) on the first error or timeout."""
    try:
      while True:
        codes = [p.poll() for p in self.procs]
        if any(c not in (None, 0) for c in codes):
          time.sleep(2)  # let the peer print its side of the story before it is killed
          self.kill()
          pytest.fail(self._report(f"a process failed: return codes {codes}"))
        if all(c == 0 for c in codes):
          return [out.read_text() for out, _ in self.logs]
        if time.time() > self.deadline:
          self.kill()
          pytest.fail(self._report("timed out"))
        time.sleep(0.2)
    finally:
      self.kill()

  def __enter__(self) -> "_Processes":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    """After the block (work done here meanwhile): waits, keeping stdout in `outputs`; an
    exception in the block kills the processes and propagates."""
    if exc_type is not None:
      self.kill()
      return
    self.outputs = self.wait()


def _flat(tree) -> np.ndarray:
  return np.concatenate([np.asarray(x, np.float32).ravel() for x in jax.tree.leaves(tree)])


@pytest.mark.slow  # ~80 s: three processes compile on 2 cores (test_sharding covers the mesh)
def test_two_processes_train_steps_match_one_device(tmp_path):
  """3 steps on a (data 2, fsdp 4) mesh spanning both processes (data across them, params
  sharded inside each), every process giving `sharding.global_batch` only the rows the pipeline
  gives it, equal 3 steps on one device with the whole batch."""
  from tests.training import sharded_steps  # pylint: disable=import-outside-toplevel
  coordinator = f"127.0.0.1:{_free_port()}"
  prefix = str(tmp_path / "steps")
  workers = _Processes(
      tmp_path, "steps",
      lambda i: [sys.executable, os.path.join(REPO, "tests/training/multiprocess_worker.py"),
                 coordinator, str(i), prefix],
      lambda i: _env(), timeout=420)
  with workers:  # the one-device reference, in this process while the workers compile
    ref, ref_params = sharded_steps.run(1, 1, jax.devices()[:1])
  # gloo's own lines share stdout (C++ buffered, possibly after ours): pick the JSON line.
  got = [json.loads([l for l in out.splitlines() if l.startswith('{"process_index"')][-1])
         for out in workers.outputs]
  assert [g["process_index"] for g in got] == [0, 1]
  assert got[0]["2x4"] == got[1]["2x4"]  # replicated metrics: both processes read the same
  out = got[0]["2x4"]
  assert out["sharded_params"] > 0  # fsdp really shards parameters
  assert out["mesh_rows_processes"] == [[0], [1]]  # data across the processes, fsdp inside
  # Tolerances of test_sharding.py (same reduction-order argument).
  np.testing.assert_allclose(out["losses"], ref["losses"], rtol=2e-5)
  np.testing.assert_allclose(out["grad_norms"], ref["grad_norms"], rtol=1e-4)
  params = np.load(prefix + ".npz")["2x4"]
  assert params.shape == ref_params.shape
  np.testing.assert_allclose(params, ref_params, rtol=1e-4, atol=1e-4)


def _read_metrics(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.slow
def test_train_py_on_two_processes_matches_one_process(tmp_path):
  """`train.py` launched as on a pod (one command per host; JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID) for 4 steps equals `trainer.train` in one process: same
  logged losses, a checkpoint whose metadata says step 4 / sample 32, restorable on one device
  to the one-process run's params. Process 0 alone logs and generates the synthetic data."""
  steps = 4
  cfg_file = tmp_path / "micro.py"
  cfg_file.write_text("from tests.conftest import micro_config\n"
                      "def get_config(arg=None):\n  return micro_config()\n")
  data_root, workdir = str(tmp_path / "data"), str(tmp_path / "run")
  coordinator = f"127.0.0.1:{_free_port()}"
  workers = _Processes(
      tmp_path, "train",
      lambda i: [sys.executable, os.path.join(REPO, "train.py"), f"--config={cfg_file}",
                 f"--workdir={workdir}", f"--config.data.root={data_root}",
                 f"--config.train.steps={steps}", "--config.train.log_every=1",
                 "--config.train.checkpoint_every=2"],
      lambda i: _env(JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES=str(NUM_PROCESSES),
                     JAX_PROCESS_ID=str(i)),
      timeout=540)
  config = micro_config()
  config.unlock()
  config.data.root = str(tmp_path / "ref_data")  # generated here: byte-identical to data_root
  config.train.steps, config.train.log_every, config.train.checkpoint_every = steps, 1, 2
  config.lock()
  reference = str(tmp_path / "reference")
  with workers:
    from lgtrack_jax.training import trainer  # pylint: disable=import-outside-toplevel
    trainer.train(config, reference)

  rows, ref_rows = _read_metrics(workdir), _read_metrics(reference)
  assert [r["step"] for r in rows] == list(range(1, steps + 1))  # one writer: no duplicates
  for key in ("loss", "focal", "l1", "giou", "contrastive"):
    np.testing.assert_allclose([r[key] for r in rows], [r[key] for r in ref_rows], rtol=2e-5,
                               err_msg=key)
  events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
  assert len(events) == 1, events  # TensorBoard from process 0 only
  ckpt = ckpt_lib.Checkpointer(workdir, async_save=False)
  assert ckpt.manager.all_steps() == [2, 4]
  ckpt.close()
  leftovers = [f for f in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in f]
  assert not leftovers, leftovers
  meta_file = os.path.join(workdir, "checkpoints", "4", "meta", "metadata")
  with open(meta_file, encoding="utf-8") as f:
    meta = json.load(f)
  assert meta.pop("config_sha256") == config_record.read(workdir)["sha256"]
  assert meta == {"step": 4, "next_sample": 32, "global_batch": 8, "seed": 0, "data_seed": 0}
  # The 8-device, 2-process checkpoint on one device (what eval.py does).
  params, step = ckpt_lib.load_params(workdir, config)
  ref_params, _ = ckpt_lib.load_params(reference, config)
  assert step == steps
  np.testing.assert_allclose(_flat(params), _flat(ref_params), rtol=1e-4, atol=1e-4)


def _train_py_pair(tmp_path, name: str, workdir: str, data_root: str, steps: int,
                   timeout: float) -> _Processes:
  """`train.py` on 2 processes (as on a 2-host pod), the micro config for `steps` steps."""
  cfg_file = write_micro_config_file(tmp_path)
  coordinator = f"127.0.0.1:{_free_port()}"
  return _Processes(
      tmp_path, name,
      lambda i: [sys.executable, os.path.join(REPO, "train.py"), f"--config={cfg_file}",
                 f"--workdir={workdir}", f"--config.data.root={data_root}",
                 f"--config.train.steps={steps}", "--config.train.log_every=1",
                 "--config.train.checkpoint_every=100"],
      lambda i: _env(JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES=str(NUM_PROCESSES),
                     JAX_PROCESS_ID=str(i), **_compilation_cache_env()),
      timeout=timeout)


def _compilation_cache_env() -> dict[str, str]:
  """The suite's XLA cache (tests/conftest.py), so a pair reuses the executables of the pair
  before it instead of compiling the 8-device step again."""
  names = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
  return {k: os.environ[k] for k in names if k in os.environ}


@pytest.mark.slow  # ~3 x 2 processes of train.py
def test_sigterm_to_one_process_saves_the_same_step_on_both(tmp_path):
  """A preemption notice may reach one host only. SIGTERM to process 1 alone: JAX's preemption
  sync has both processes save the same step and exit 0 (Orbax saves collectively: a step one
  process did not reach would hang or tear the checkpoint). The rerun of both resumes there and
  ends with params bitwise equal to an uninterrupted pair's, each step logged once."""
  steps = 10
  data_root = str(tmp_path / "data")
  reference, interrupted = str(tmp_path / "reference"), str(tmp_path / "interrupted")
  with _train_py_pair(tmp_path, "reference", reference, data_root, steps, timeout=400):
    pass

  pair = _train_py_pair(tmp_path, "preempted", interrupted, data_root, steps, timeout=400)
  with pair:
    # Process 0's bar appears once both processes are past jax.distributed.initialize (the
    # synthetic data barrier) and the loop is about to compile its first step.
    bar_log = pair.logs[0][1]
    while time.time() < pair.deadline and all(p.poll() is None for p in pair.procs):
      if f"/{steps} [" in bar_log.read_text(errors="replace"):
        break
      time.sleep(0.1)
    # pylint: disable-next=protected-access
    assert all(p.poll() is None for p in pair.procs), pair._report("ended before SIGTERM")
    pair.procs[1].send_signal(signal.SIGTERM)
  saved = []
  for _, err in pair.logs:
    found = re.findall(r"SIGTERM: process (\d) saved step (\d+), exiting", err.read_text())
    saved.append(found)
  assert saved[0] and saved[1], saved
  (p0, s0), (p1, s1) = saved[0][-1], saved[1][-1]
  assert (p0, p1) == ("0", "1") and s0 == s1, saved  # both saved the same step
  step = int(s0)
  assert 1 <= step < steps, step
  ckpt = ckpt_lib.Checkpointer(interrupted, async_save=False)
  assert ckpt.manager.all_steps() == [step]
  ckpt.close()

  with _train_py_pair(tmp_path, "resumed", interrupted, data_root, steps, timeout=400):
    pass
  rows, ref_rows = _read_metrics(interrupted), _read_metrics(reference)
  assert [r["step"] for r in rows] == list(range(1, steps + 1))
  for r, ref in zip(rows, ref_rows):
    assert r["loss"] == ref["loss"], (r, ref)
  config = micro_config()
  params, got_step = ckpt_lib.load_params(interrupted, config)
  ref_params, _ = ckpt_lib.load_params(reference, config)
  assert got_step == steps
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tracker", ["static", pytest.param("lgtrack", marks=pytest.mark.slow)])
def test_eval_py_on_two_processes_scores_like_one_process(tmp_path, tracker):
  """`eval.py` on 2 processes: each tracks its share of the 3 sequences (lgtrack: with the
  params loaded on its own first device), they meet at a barrier, process 0 scores (and prints),
  process 1 returns None; metrics.json and the result files equal a one-process `runner.run`."""
  data_root = str(tmp_path / "data")
  synthetic.generate(data_root, num_train=1, num_test=3, num_frames=12, seed=2)
  out_dir, ref_dir = str(tmp_path / "two"), str(tmp_path / "one")
  if tracker == "static":
    from configs import tiny  # pylint: disable=import-outside-toplevel
    config, config_arg, checkpoint, extra = tiny.get_config(), "configs/tiny.py", None, []
  else:
    config, config_arg = micro_config(), str(tmp_path / "micro.py")
    (tmp_path / "micro.py").write_text("from tests.conftest import micro_config\n"
                                       "def get_config(arg=None):\n  return micro_config()\n")
    checkpoint = str(tmp_path / "train")
    make_micro_workdir(checkpoint, config=config)
    extra = [f"--checkpoint={checkpoint}"]
  coordinator = f"127.0.0.1:{_free_port()}"
  workers = _Processes(
      tmp_path, "eval",
      lambda i: [sys.executable, os.path.join(REPO, "eval.py"), f"--config={config_arg}",
                 f"--tracker={tracker}", "--dataset=synthetic", f"--data_root={data_root}",
                 f"--results_dir={out_dir}", *extra],
      lambda i: _env(JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES=str(NUM_PROCESSES),
                     JAX_PROCESS_ID=str(i)),
      timeout=300)
  with workers:
    ref = runner.run(config=config, checkpoint=checkpoint, dataset="synthetic",
                     data_root=data_root, split="test", results_dir=ref_dir, mode=None,
                     tracker=tracker, analyze_only=False, sequences_file=None,
                     protocol="official", validity="all4",
                     batch_sequences=config.eval.batch_sequences)
  outs = workers.outputs
  assert "AUC" in outs[0] and "AUC" not in outs[1], outs  # only process 0 scored
  with open(os.path.join(out_dir, "metrics.json"), encoding="utf-8") as f:
    got = json.load(f)
  with open(os.path.join(ref_dir, "metrics.json"), encoding="utf-8") as f:
    want = json.load(f)
  assert ref["auc"] == want["auc"]
  # Process 0 tracked only its share (2 of the 3 sequences).
  assert got["speed"]["shard"] == "0/2" and want["speed"]["shard"] == "0/1"
  seqs = sources.load("synthetic", data_root, "test")
  mine = runner.shard_sequences(seqs, 0, 2)
  assert len(mine) == 2
  assert got["speed"]["frames"] == sum(len(s) for s in mine) < want["speed"]["frames"]
  for record, where in ((got, out_dir), (want, ref_dir)):
    assert record.pop("results_dir") == where
    record.pop("speed")
    record["plots"] = [os.path.relpath(v, where) for v in record["plots"]]
  assert got == want
  assert got["num_sequences"] == 3 and set(got["per_sequence"]) == {s.name for s in seqs}
  for seq in seqs:  # every result file exists, written by whichever process owned it
    np.testing.assert_array_equal(results.read_result(os.path.join(out_dir, f"{seq.name}.txt")),
                                  results.read_result(os.path.join(ref_dir, f"{seq.name}.txt")))


def test_initialize_args_from_environment():
  """JAX reads only the coordinator from the environment; the process count and id come from
  JAX_NUM_PROCESSES / JAX_PROCESS_ID (else initialize() cannot start outside TPU/SLURM/MPI)."""
  assert distributed.initialize_args({}) == {}
  assert distributed.initialize_args({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}) == {
      "num_processes": 2, "process_id": 1}
  assert distributed.initialize_args({"JAX_NUM_PROCESSES": ""}) == {}
