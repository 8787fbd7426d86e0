"""Shared fixtures: tiny configs on real (bundled) data, temp workdirs."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The default run compiles many tiny programs once each: without LLVM's
# optimisation passes (XLA's own graph passes still run) a cold run takes
# half the time on 2 CPU cores. A run that picks markers itself (`-m slow`,
# CI's second step: real data, long equality checks) keeps XLA's default
# level 3, as users run. Set here, in the main process, so that xdist
# workers inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  _level = 3 if any(a.startswith("-m") for a in sys.argv[1:]) else 0
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_backend_optimization_level={_level}"
                             ).strip()

import importlib  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from gansynth import config_schema  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tests build the same tiny steps many times (and in subprocesses): a shared
# persistent compilation cache turns most recompiles into cache hits.
CACHE = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), "gansynth-test-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  """One tfds data_dir for the session: sklearn_digits is prepared once."""
  return str(tmp_path_factory.mktemp("tfds"))


def load_config(spec: str):
  """"quickstart:tiny" -> configs/quickstart.py's get_config("tiny"), as
  `--config configs/quickstart.py:tiny` loads it."""
  name, _, variant = spec.partition(":")
  return importlib.import_module(f"configs.{name}").get_config(variant)


def tiny(config, tfds_dir):
  """`config`'s "tiny" variant, offline on the session's tfds data_dir."""
  config = config_schema.apply_variant(config, "tiny")
  config.data.data_dir = tfds_dir
  config.data.download = False
  return config


@pytest.fixture
def tiny_config(tfds_dir):
  """The default schema on sklearn digits (8x8x1, K=10), made tiny."""
  config = load_config("default:tiny")
  config.data.data_dir = tfds_dir
  config.data.download = False
  return config


def nan_in_gan_2_at_step_4(make_train_chunk):
  """make_train_chunk whose chunks make GAN 2's generator NaN on reaching
  step 4 (a divergence to detect and roll back)."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def poisoned(config, nets=None):
    chunk = make_train_chunk(config, nets)

    def run(state, data, num_steps, **kwargs):
      state, metrics = chunk(state, data, num_steps, **kwargs)
      hit = state.step == 4
      g_params = jax.tree.map(
          lambda x: x.at[2].set(jnp.where(hit, jnp.nan, x[2])),
          state.gans.g_params)
      return state.replace(gans=state.gans.replace(g_params=g_params)), metrics
    return run
  return poisoned


INTEGRATION = os.path.join(REPO, "tests", "integration")


def pytest_collection_modifyitems(items):
  """Tests under tests/integration/ (subprocesses, the notebook, several
  hosts, real data files) are marked `integration`: the default run leaves
  them to their own CI step."""
  for item in items:
    if str(item.path).startswith(INTEGRATION + os.sep):
      item.add_marker(pytest.mark.integration)
