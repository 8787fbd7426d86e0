"""Command line: python -m gansynth.main --config configs/<name>.py --workdir DIR.

All logic is in libraries that can be tested and imported in Colab; this
file only parses flags and reports errors in one line. TF and JAX are
imported inside `main`, after the flags are parsed, so `--help` and flag
errors come back at once.
"""

import difflib
import glob
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gansynth.runtime import libraries

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples, "
                    "synthetic data sets and results.")
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py); override fields with "
    "--config.gan.train_steps=200.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("prepare", "train_gan", "synthesize", "classify", "evaluate")
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-?")
# Kept for callers of the old names (notebooks).
quiet_library_info = libraries.quiet_library_info
prepare_libraries = libraries.prepare_libraries


def configs_dir() -> str:
  """configs/ of the checkout: the current directory's, else gansynth's."""
  here = os.path.join(os.getcwd(), "configs")
  return here if os.path.isdir(here) else os.path.join(REPO, "configs")


def config_names() -> list[str]:
  return sorted(os.path.basename(p)[:-3]
                for p in glob.glob(os.path.join(configs_dir(), "*.py")))


def help_text() -> str:
  return "\n".join([
      "usage: python -m gansynth.main --config configs/<name>.py "
      "--workdir DIR [--config.<field>=<value> ...]",
      "",
      "Trains one GAN per class, synthesizes a labelled data set, and scores",
      "a classifier trained on real, GAN and procedural images on real test",
      "images. Rerunning a command resumes it; finished stages are reused.",
      "",
      "flags:",
      "  --config FILE      a config file (gansynth/config_schema.py lists "
      "every field)",
      "  --config.a.b=V     override one field, e.g. "
      "--config.gan.train_steps=200",
      "  --workdir DIR      checkpoints, samples/, synthetic/, results.md, "
      "TensorBoard logs",
      "",
      f"configs ({os.path.relpath(configs_dir())}/): "
      + ", ".join(config_names()),
      "stages (--config.stages, comma-separated, run in this order): "
      + ", ".join(STAGES),
      "  default: train_gan,synthesize,classify; evaluate writes report.md",
      "",
      "example (a few minutes on a CPU, no download):",
      "  python -m gansynth.main --config configs/quickstart.py "
      "--workdir /tmp/qs",
      "  tensorboard --logdir /tmp/qs",
  ])


def fail(message: str) -> None:
  """One line on stderr, exit status 1."""
  sys.exit(f"gansynth: error: {message}")


def flag_value(argv: list[str], name: str) -> str | None:
  """The value of --name=V or --name V in argv (None if absent)."""
  for i, arg in enumerate(argv):
    for prefix in (f"--{name}=", f"-{name}="):
      if arg.startswith(prefix):
        return arg[len(prefix):]
    if arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def check_paths(argv: list[str]) -> None:
  """A missing flag or config file, or a workdir that is a file."""
  config = flag_value(argv, "config")
  missing = [f"--{n}" for n in ("config", "workdir")
             if flag_value(argv, n) is None]
  if missing:
    fail(f"{' and '.join(missing)} required, e.g. --config "
         "configs/quickstart.py --workdir /tmp/qs (see --help)")
  if config is not None:
    path = config.split(":")[0]  # config_flags allows file.py:arg
    if not os.path.isfile(path):
      fail(f"config file {path!r} not found; configs in "
           f"{os.path.relpath(configs_dir())}/: {', '.join(config_names())}")
  workdir = flag_value(argv, "workdir")
  if workdir and os.path.exists(workdir) and not os.path.isdir(workdir):
    fail(f"--workdir={workdir} is a file, not a directory; choose a "
         "directory (it is created if missing)")


def unknown_key_message(argv: list[str]) -> str:
  """Names the --config.* override that is not in the schema, with hints."""
  from gansynth import config_schema  # pylint: disable=g-import-not-at-top
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
  """absl flag parsing: our own --help (exit 0), one line per bad input."""
  if any(a in HELP_FLAGS for a in argv[1:]):
    print(help_text())
    sys.exit(0)
  check_paths(argv[1:])
  try:
    return FLAGS(argv)
  except flags.Error as e:
    fail(str(e).splitlines()[0])
  except (AttributeError, KeyError):
    fail(unknown_key_message(argv))
  except Exception as e:  # pylint: disable=broad-except
    # An error inside the config file itself (its get_config()).
    fail(f"config {flag_value(argv, 'config')!r}: "
         f"{type(e).__name__}: {e}".splitlines()[0])
  return []


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]} (flags are --config, --workdir, "
         "--config.<field>=<value>; see --help)")
  from gansynth import pipeline  # pylint: disable=g-import-not-at-top
  logging.get_absl_handler().addFilter(libraries.quiet_library_info)
  try:  # validates first, before TF is imported: a bad value fails at once
    pipeline.run(FLAGS.config, FLAGS.workdir)
  except libraries.user_errors() as e:
    fail(str(e))
  except ImportError as e:  # no TensorFlow (libraries.import_tensorflow)
    fail(str(e))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
