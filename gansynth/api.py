"""Python API: the stages as functions, and a finished workdir as an object.

  import gansynth
  run = gansynth.run("quickstart", "/tmp/qs")   # all stages of the config
  run = gansynth.load("/tmp/qs")                # later, from the workdir
  run.config, run.results                       # config.json, results.json
  images = run.sample(3, n=16, seed=0)          # uint8 [16, H, W, C] of "3"

`train`, `synthesize`, `classify` and `evaluate` run one stage each, with
the checks of the command line (config validation, the workdir, one-line
errors raised as ConfigError, DatasetError, CheckpointError, ...).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Any

import ml_collections
import numpy as np

from gansynth import config_schema
from gansynth import paths
from gansynth.config_schema import ConfigError

Config = ml_collections.ConfigDict | str


def as_config(config: Config) -> ml_collections.ConfigDict:
  """A ConfigDict, or a config name ("quickstart") or file path."""
  if isinstance(config, str):
    from gansynth import notebook_utils  # pylint: disable=g-import-not-at-top
    return notebook_utils.load_config(config)
  return config


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config of the newest invocation stored in `workdir`/config.json,
  as a locked ConfigDict of the schema (tuples and types as configs have)."""
  path = paths.config_file(workdir)
  if not os.path.isfile(path):
    raise ConfigError(f"no config.json in {workdir}: not a gansynth workdir "
                      "(or no stage has run in it yet)")
  with open(path) as f:
    stored = json.load(f)
  if isinstance(stored, list):  # one entry per invocation
    stored = stored[-1]["config"]
  config = config_schema.default_config()
  _fill(config, stored, "config")
  config.lock()
  return config


def _fill(node: ml_collections.ConfigDict, values: dict[str, Any],
          where: str) -> None:
  for key, value in values.items():
    if key not in node:
      raise ConfigError(f"{where}.{key} (config.json) is not a config field "
                        "of this gansynth version")
    current = node[key]
    if isinstance(current, ml_collections.ConfigDict):
      _fill(current, value, f"{where}.{key}")
    elif isinstance(current, tuple):
      node[key] = tuple(value)
    else:
      node[key] = value


class Run:
  """A workdir: its config, results, stored generators, and samples."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.workdir = workdir
    self.config = config

  def __repr__(self) -> str:
    return (f"Run({self.workdir!r}: {self.config.data.name}, "
            f"{'results' if self.results else 'no results yet'})")

  @property
  def results(self) -> dict[str, Any] | None:
    """results.json (test accuracy per source), None before classify."""
    path = paths.results_json(self.workdir)
    if not os.path.isfile(path):
      return None
    with open(path) as f:
      return json.load(f)

  @functools.cached_property
  def _nets(self):
    from gansynth.gan import gan_train  # pylint: disable=g-import-not-at-top
    return gan_train.make_nets(self.config)

  @functools.cached_property
  def generators(self):
    """The newest stored GAN state (gan_train.TrainState, K GANs stacked)."""
    from gansynth.gan import gan_train  # pylint: disable=g-import-not-at-top
    return gan_train.restore_trained(self.config, self.workdir, self._nets)

  @functools.cached_property
  def class_names(self) -> list[str]:
    from gansynth.data import input_pipeline  # pylint: disable=g-import-not-at-top
    try:
      return input_pipeline.class_names(self.config.data)
    except Exception:  # pylint: disable=broad-except
      return [str(k) for k in range(self.config.data.num_classes)]

  def class_index(self, label: int | str) -> int:
    """A class id, or a class name ("3", "T-shirt/top") -> its id."""
    k = self.config.data.num_classes
    if isinstance(label, str):
      if label in self.class_names:
        return self.class_names.index(label)
      raise ConfigError(f"class {label!r} not in {self.class_names}")
    if not 0 <= int(label) < k:
      raise ConfigError(f"label {label} outside [0, {k})")
    return int(label)

  @functools.cached_property
  def _sampler(self):
    from gansynth.gan import gan_train  # pylint: disable=g-import-not-at-top
    return gan_train.make_sampler(self.config, self._nets)

  def sample(self, label: int | str, n: int = 16, seed: int = 0
             ) -> np.ndarray:
    """`n` images of class `label`: uint8 [n, H, W, C].

    From the class's generator (its EMA weights where the run keeps an EMA
    and `synthesis.use_ema` is on), noise from `seed`; the same arguments
    give the same images.
    """
    # pylint: disable=g-import-not-at-top
    import jax
    import jax.numpy as jnp
    from gansynth.data import input_pipeline
    from gansynth.gan import gan_train
    k = self.class_index(label)
    gans = self.generators.gans
    key = jax.random.fold_in(jax.random.key(seed), k)
    latent = self.config.gan.latent_dim
    if self.config.gan.conditioning == "conditional":  # one G, all classes
      z = jnp.broadcast_to(jax.random.normal(key, (1, int(n), latent)),
                           (gan_train.num_rows(self.config), int(n), latent))
      return input_pipeline.to_uint8(self._sampler(gans, z))[k]
    g = k if self.config.gan.conditioning == "per_class" else 0
    one = jax.tree.map(lambda x: x[g:g + 1], gans)
    z = jax.random.normal(key, (1, int(n), latent))
    return input_pipeline.to_uint8(self._sampler(one, z))[0]


def load(workdir: str) -> Run:
  """The run stored in `workdir` (config from its config.json)."""
  if not os.path.isdir(workdir):
    raise ConfigError(f"workdir {workdir} does not exist")
  return Run(workdir, read_config(workdir))


def run(config: Config, workdir: str, stages: str | None = None) -> Run:
  """Runs the config's stages (or `stages`, e.g. "train_gan,synthesize")."""
  from gansynth import pipeline  # pylint: disable=g-import-not-at-top
  config = as_config(config)
  if stages is not None:
    config = copy.deepcopy(config)
    config.stages = stages
  pipeline.run(config, workdir)
  return Run(workdir, config)


def train(config: Config, workdir: str) -> Run:
  """Stage train_gan: trains (or resumes) the class GANs."""
  return run(config, workdir, "train_gan")


def synthesize(config: Config, workdir: str) -> Run:
  """Stage synthesize: the GAN (and procedural) synthetic data sets."""
  return run(config, workdir, "synthesize")


def classify(config: Config, workdir: str) -> Run:
  """Stage classify: a classifier per source, tested on real images."""
  return run(config, workdir, "classify")


def evaluate(config: Config, workdir: str) -> Run:
  """Stage evaluate: report.md with seeds, low-data sweeps and distances."""
  return run(config, workdir, "evaluate")
