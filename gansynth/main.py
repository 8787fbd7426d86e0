"""Command line: python -m gansynth.main --config configs/<name>.py --workdir DIR.

All logic is in libraries that can be tested and imported in Colab; this
file only parses flags and reports errors in one line.
"""

import difflib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import tensorflow as tf
import tensorflow_datasets as tfds

from gansynth import config_schema
from gansynth import parallel
from gansynth import pipeline
from gansynth.config_schema import ConfigError
from gansynth.gan_train import NonFiniteError
from gansynth.preemption import Preempted
from gansynth.image_datasets import DatasetError
from gansynth.store import CheckpointError

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples, "
                    "synthetic data sets and results.")
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py); override fields with "
    "--config.gan.train_steps=200.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, NonFiniteError,
               Preempted)


def quiet_library_info(record) -> bool:
  """Hides INFO lines of Orbax and tfds; their warnings still show."""
  noisy = ("/orbax/", "/tensorflow_datasets/")
  return record.levelno > logging.converter.STANDARD_INFO or not any(
      n in record.pathname for n in noisy)


def unknown_key_message(argv: list[str]) -> str:
  """Names the --config.* override that is not in the schema, with hints."""
  schema = config_schema.default_config()
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].split("=")[0].split(".")
    node = schema
    for i, part in enumerate(path):
      if not hasattr(node, "keys") or part not in node:
        known = sorted(node.keys()) if hasattr(node, "keys") else []
        close = difflib.get_close_matches(part, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = ".".join(["config"] + path[:i])
        return (f"unknown config key --config.{'.'.join(path)}: {where} has "
                f"no field {part!r}.{hint} Fields there: {', '.join(known)}")
      node = node[part]
  return "unknown config key (see gansynth/config_schema.py for the fields)"


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with one clear line for a misspelt config key."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"gansynth: error: {e}")
  except (AttributeError, KeyError):
    sys.exit(f"gansynth: error: {unknown_key_message(argv)}")


def prepare_libraries() -> None:
  """TF off the accelerators (it only reads data; JAX owns them) and tfds'
  progress bars off (our own progress lines say what is going on)."""
  try:
    tf.config.experimental.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices
    pass
  tfds.disable_progress_bar()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  prepare_libraries()
  logging.get_absl_handler().addFilter(quiet_library_info)
  try:
    config_schema.validate(FLAGS.config)
    parallel.initialize(FLAGS.config)  # multi-host: before any other JAX call
    pipeline.run(FLAGS.config, FLAGS.workdir)
  except USER_ERRORS as e:
    logging.error("%s", e)
    sys.exit(f"gansynth: error: {e}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
