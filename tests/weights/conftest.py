"""The micro LGTrack, built once for the weight tests, and a way to read its ViT output."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgtrack_jax.models import lgtrack
from tests.conftest import micro_config


@dataclasses.dataclass
class MicroModel:
  """fresh_params: zeros shaped as the model's params (jax.Arrays); vit_tokens(params, template, search) -> the
  final-norm ViT tokens [B, Nz + Nx, D] (numpy), read from LGTrack itself in mode 0."""

  fresh_params: Any
  vit_tokens: Callable[[Any, np.ndarray, np.ndarray], np.ndarray]


@pytest.fixture(scope="session")
def micro_model() -> MicroModel:
  config = micro_config()
  model = lgtrack.build_model(config)
  # Zeros in the init's shapes: cheaper than compiling the init, and what is not loaded does
  # not matter in mode 0, where the gated EMIM adds exactly nothing to the vision tokens.
  shapes = jax.eval_shape(model.init, jax.random.key(0), **lgtrack.dummy_inputs(config))
  params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["params"])

  @jax.jit
  def run(params, template, search):
    b = template.shape[0]
    inputs = dict(lgtrack.dummy_inputs(config, b), template=template, search=search,
                  mode=jnp.zeros((b,), jnp.int32))  # mode 0: EMIM adds nothing (gated)
    _, state = model.apply({"params": params}, **inputs, mutable=["intermediates"],
                           capture_intermediates=lambda mdl, _: mdl.scope.path == ("norm",))
    return state["intermediates"]["norm"]["__call__"][0]

  return MicroModel(params, lambda p, z, x: np.asarray(run(p, z, x)))


def config_with_init(**init):
  """The micro config with `model.init.<key> = value` for each keyword (vit, text, tracker)."""
  config = micro_config()
  config.unlock()
  for key, value in init.items():
    config.model.init[key] = value
  config.lock()
  return config


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
  """Random uint8 template [2, 32, 32, 3] and search [2, 64, 64, 3] (the micro crop sizes)."""
  rng = np.random.default_rng(7)
  return (rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
          rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
