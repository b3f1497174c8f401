"""Shared fixtures: a micro LGTrack config that compiles in seconds on a CPU."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

# The suite compiles far more than it computes (micro models, a few steps each), so XLA:CPU
# generates code at LLVM optimisation level 0: the micro model's train step compiles in 6.9 s
# instead of 9.8 and runs in 30 ms instead of 10. Set before JAX starts its backend; subprocesses
# inherit it. The same HLO and the same numerics contracts are tested; only machine-code
# optimisation is skipped.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()

import jax  # pylint: disable=wrong-import-position
import ml_collections
import pytest

from configs import common, tiny

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


# XLA's executables are kept on disk for the session: many tests compile the same micro-model
# functions (init, train step, tracker step), in this process and in the train.py / eval.py
# subprocesses, which inherit the environment (and so the directory). Every test still traces and
# lowers its functions; only a module whose HLO, devices and flags are identical reuses the binary.
# A fresh directory per session, removed at its end, unless JAX_COMPILATION_CACHE_DIR is set.
_OWN_CACHE = not os.environ.get("JAX_COMPILATION_CACHE_DIR")
if _OWN_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgtrack-tests-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
  if _OWN_CACHE:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def xla_flags_with_cpu_devices(n: int) -> str:
  """XLA_FLAGS for a test's subprocess with n simulated CPU devices: the inherited flags (the
  suite's optimisation level above among them) plus the device count."""
  inherited = os.environ.get("XLA_FLAGS", "")
  return f"{inherited} --xla_force_host_platform_device_count={n}".strip()


def micro_config() -> ml_collections.ConfigDict:
  """The tiny config shrunk further: random 1-layer text encoder, 2-block 32-d ViT, 32/64 crops."""
  c = tiny.get_config()
  c.unlock()
  m = c.model
  m.hidden_size, m.depth, m.num_heads, m.pretrain_grid = 32, 2, 2, 4
  m.emim.layers, m.emim.num_heads = (0, 1), 2
  m.decoder.num_layers, m.decoder.hidden_size, m.decoder.num_heads = 1, 32, 2
  m.head.channels, m.head.num_convs = 16, 1
  m.embed_dim = 16
  t = m.text
  t.checkpoint = ""
  t.tokenizer = common.default_text_checkpoint()  # the MiniLM tokenizer files only
  t.trainable = True
  t.hidden_size, t.num_layers, t.num_heads, t.intermediate_size = 32, 1, 2, 64
  t.max_len = 12
  c.data.template_size, c.data.search_size = 32, 64
  c.data.synthetic_train, c.data.synthetic_test, c.data.synthetic_frames = 6, 2, 20
  c.train.steps, c.train.global_batch, c.train.log_every, c.train.checkpoint_every = 4, 8, 1, 2
  c.optim.warmup_steps = 1
  c.lock()
  return c


@pytest.fixture
def config() -> ml_collections.ConfigDict:
  return micro_config()


def make_micro_workdir(path: str, step: int = 3, config=None) -> str:
  """A train workdir at `path` holding a freshly initialised checkpoint of `config`'s model
  (default: the micro config)."""
  # pylint: disable=import-outside-toplevel
  from lgtrack_jax.models import lgtrack
  from lgtrack_jax import checkpoint as ckpt_lib
  from lgtrack_jax.training import optim, sharding, state as state_lib
  config = micro_config() if config is None else config
  model = lgtrack.build_model(config)
  params = lgtrack.param_shapes(config)
  tx, _ = optim.make_optimizer(config, params)
  state, _ = state_lib.create_state(model, tx, sharding.make_mesh(config), config,
                                    jax.random.key(0))
  ckpt = ckpt_lib.Checkpointer(path, async_save=False)
  ckpt.save(step, state, {"step": step, "next_sample": 0})
  ckpt.close()
  return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> str:
  """A train workdir holding a step-3 checkpoint of the micro model, shared by the whole session:
  read it, never write into it."""
  return make_micro_workdir(str(tmp_path_factory.mktemp("train")))


def synthetic_root(tmp_path_factory, num_train: int, num_test: int, num_frames: int,
                   seed: int) -> str:
  """A fresh synthetic dataset (LaSOT layout) of these sizes, for a module's `data_root`."""
  from input_pipeline import synthetic  # pylint: disable=import-outside-toplevel
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, num_train=num_train, num_test=num_test, num_frames=num_frames,
                     seed=seed)
  return root


MICRO_CONFIG_FILE = '''"""The test suite's micro config (tests/conftest.py) as a config file, for subprocesses."""
from tests.conftest import micro_config


def get_config(arg=None):
  del arg
  return micro_config()
'''


def write_micro_config_file(directory) -> str:
  """Writes the micro config as a config file (for `--config` of a subprocess run with the
  repository on PYTHONPATH); returns its path."""
  path = os.path.join(str(directory), "micro_config.py")
  with open(path, "w", encoding="utf-8") as f:
    f.write(MICRO_CONFIG_FILE)
  return path
