"""The whole run, stage by stage: prepare, train_gan, synthesize, refine,
classify.

Stages talk only through the workdir: the Orbax store (checkpoints/), the
synthetic data sets (synthetic/) and result files. So any stage can be rerun
on its own (``--config.stages=classify``), and a rerun of a finished stage
reuses what is stored instead of redoing it.

`run` is the one entry of the command line, the Python API and the notebook:
it validates the config (once, before TensorFlow is imported, so a bad value
fails at once) and sets up the libraries. The stage modules are imported
only after that.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from absl import logging
import jax

from gansynth import config_schema
from gansynth import paths
from gansynth.config_schema import ConfigError
from gansynth.runtime import libraries
from gansynth.runtime import parallel
from gansynth.runtime import workdir_lock


def append_entry(path: str, entry: dict, legacy_key: str) -> None:
  """Adds `entry` (with the time and command line) to the JSON list in
  `path`: one entry per invocation. A file of the older single-object form
  becomes the first entry, {legacy_key: object}. Written to a temporary
  file first, so a kill never leaves half a file."""
  entries = []
  if os.path.exists(path):
    with open(path) as f:
      try:
        entries = json.load(f)
      except json.JSONDecodeError:
        entries = []
    if not isinstance(entries, list):
      entries = [{legacy_key: entries}]
  entries.append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "argv": list(sys.argv), **entry})
  with open(path + ".tmp", "w") as f:
    json.dump(entries, f, indent=2)
  os.replace(path + ".tmp", path)


def prepare_workdir(config, workdir: str) -> None:
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir} is a file, not a directory; "
                      "choose a directory (it is created if missing)")
  try:
    os.makedirs(workdir, exist_ok=True)
    if parallel.is_primary():
      append_entry(paths.config_file(workdir),
                   {"config": json.loads(config.to_json_best_effort())},
                   "config")
  except OSError as e:
    raise ConfigError(f"--workdir={workdir} is not writable ({e.strerror}); "
                      "choose a directory you can write to") from None


def run(config, workdir: str) -> None:
  """Runs the configured stages in order, as the workdir's one writer."""
  set_up(config)
  prepare_workdir(config, workdir)
  lock = (workdir_lock.hold(workdir) if parallel.is_primary()
          else contextlib.nullcontext())
  with lock, workdir_lock.guard(workdir):
    run_stages(config, workdir)


def set_up(config) -> None:
  """What every run does first: validate the config (ConfigError), keep TF
  off the accelerators, join the multi-host job if configured."""
  config_schema.validate(config)
  libraries.prepare_libraries()
  parallel.initialize(config)


def run_stages(config, workdir: str) -> None:
  """The stages of `run`, in order (the workdir is prepared and locked)."""
  # pylint: disable=g-import-not-at-top
  from gansynth.data import data_import
  from gansynth.gan import gan_train
  from gansynth.gan import selection
  from gansynth.gan import synthesis
  from gansynth.runtime import metrics_log
  from gansynth.scoring import evaluation
  from gansynth.sim import refiner
  stages = config_schema.split_list(config.stages)
  logging.info("gansynth: stages %s, workdir %s, %d %s device(s)",
               ",".join(stages), workdir, jax.device_count(),
               jax.default_backend())
  if parallel.is_primary():
    metrics_log.write_hparams(workdir, config)
  timings = {}

  def timed(name, fn, *args):
    t0 = time.time()
    out = fn(*args)
    timings[name] = round(time.time() - t0, 1)
    logging.info("stage %s done in %.1fs", name, timings[name])
    return out

  if "prepare" in stages or config.data.source_dir:
    if not config.data.source_dir:
      raise ConfigError("stage prepare needs --config.data.source_dir=<folder "
                        "with the original files>")
    timed("prepare", data_import.prepare, config.data.name,
          config.data.source_dir, config.data.data_dir or None)
  if "train_gan" in stages:
    timed("train_gan", gan_train.train, config, workdir)
  sources = config_schema.split_list(config.classifier.sources)
  if "synthesize" in stages:
    # Without a GAN among the sources (and no evaluate), no GAN is needed:
    # --config.classifier.sources=real,procedural runs on a fresh workdir.
    if "gan" in sources or "evaluate" in stages:
      checkpoint = (timed("select", selection.choose, config, workdir)
                    if config.synthesis.select else None)
      timed("synthesize", synthesis.synthesize, config, workdir, checkpoint)
    if "procedural" in sources or "refined" in sources:
      timed("render_procedural", synthesis.render_procedural, config, workdir)
  if "refine" in stages or ("synthesize" in stages and "refined" in sources):
    timed("refine", refiner.refine, config, workdir)
  if "classify" in stages:
    timed("classify", evaluation.classify, config, workdir)
  if "evaluate" in stages:
    timed("evaluate", evaluation.evaluate, config, workdir)
  if parallel.is_primary():
    append_entry(paths.timings_file(workdir),
                 {"stages": stages, "seconds": timings}, "seconds")
