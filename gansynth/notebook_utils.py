"""Helpers for running gansynth from a notebook (Colab, Jupyter).

The notebook (notebooks/gansynth_colab.ipynb) only calls these and
`gansynth.pipeline`: load a config file with overrides from Python, set up
logging as the command line does, and show a workdir's sample grids, loss
curves and results table inline. Nothing here trains or scores anything.
"""

from __future__ import annotations

import glob
import importlib.util
import logging as pylogging
import os
import shutil
import sys
import sysconfig
from typing import Any, Mapping

from absl import logging
import ml_collections

from gansynth import main
from gansynth import paths
from gansynth.config_schema import ConfigError


def in_colab() -> bool:
  return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def repo_root() -> str:
  """The folder holding configs/: the current directory, a parent, the
  checkout gansynth was imported from (an editable install), or the copy a
  wheel installs under <prefix>/share/gansynth."""
  here = os.path.abspath(os.getcwd())
  candidates = [here]
  while os.path.dirname(candidates[-1]) != candidates[-1]:
    candidates.append(os.path.dirname(candidates[-1]))
  candidates.append(os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  # A wheel's copy (pyproject's data-files).
  candidates += [os.path.join(prefix, "share", "gansynth") for prefix in
                 (sys.prefix, sysconfig.get_paths()["data"])]
  for path in candidates:
    if os.path.isfile(os.path.join(path, "configs", "quickstart.py")):
      return path
  raise ConfigError("no configs/ folder found: run the notebook from the "
                    "gansynth checkout (or let its install cell clone it)")


def config_path(name: str) -> str:
  """'svhn' -> <repo>/configs/svhn.py; a path to a .py file is kept."""
  if name.endswith(".py") or os.sep in name:
    path = name
  else:
    path = os.path.join(repo_root(), "configs", f"{name}.py")
  if not os.path.isfile(path):
    configs = sorted(os.path.basename(p)[:-3] for p in glob.glob(
        os.path.join(repo_root(), "configs", "*.py")))
    raise ConfigError(f"config {name!r} not found ({path}); configs: "
                      f"{', '.join(configs)}")
  return path


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any]) -> None:
  """Sets dotted fields ("gan.train_steps": 200) in a locked config.

  As with --config.x=y on the command line, a key that is not in the schema
  or a value of the wrong type raises ConfigError naming the field.
  """
  for key, value in overrides.items():
    *parents, name = key.split(".")
    node = config
    try:
      for part in parents:
        node = node[part]
      if name not in node:
        raise KeyError(name)
      node[name] = value
    except (KeyError, AttributeError):
      raise ConfigError(main.unknown_key_message(
          [f"--config.{key}={value}"])) from None
    except TypeError as e:
      raise ConfigError(f"config.{key}={value!r}: {e}") from None


def load_config(name: str, overrides: Mapping[str, Any] | None = None
                ) -> ml_collections.ConfigDict:
  """get_config() of configs/<name>.py, locked, with `overrides` applied.

  The same config `--config configs/<name>.py --config.a.b=v` gives on the
  command line (config_flags with lock_config=True); "<name>:<variant>"
  calls get_config(variant), as `--config configs/<name>.py:<variant>` does.
  """
  name, *variant = name.split(":", 1)
  path = config_path(name)
  spec = importlib.util.spec_from_file_location(
      f"gansynth_config_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(*variant)
  config.lock()
  apply_overrides(config, overrides or {})
  return config


def quiet_records(record) -> bool:
  """The command line's log filter, and clu's metric lines (plotted instead)."""
  return main.quiet_library_info(record) and (
      record.levelno > pylogging.INFO or "/clu/" not in record.pathname)


def setup_runtime() -> None:
  """What gansynth.main does before a run: TF off the accelerators (and its
  start-up banner dropped), progress lines (absl INFO) on, Orbax/tfds/clu
  INFO chatter off."""
  main.prepare_libraries()
  logging.set_verbosity(logging.INFO)
  # Without app.run, records reach Python's handlers, not absl's: filter at
  # the logger. addFilter ignores a filter that is already there.
  logging.get_absl_logger().addFilter(quiet_records)


def sample_files(workdir: str) -> list[str]:
  """The workdir's sample grids: the last training grid, then synthetic sets."""
  samples = paths.samples_dir(workdir)
  steps = sorted(glob.glob(os.path.join(samples, "gan_step*.png")))
  synthetic = sorted(glob.glob(os.path.join(samples, "*_synthetic.png")))
  return steps[-1:] + synthetic


def show_samples(workdir: str) -> list[str]:
  """Displays the sample grids inline (rows = classes); returns their paths."""
  from IPython import display  # pylint: disable=g-import-not-at-top
  paths = sample_files(workdir)
  for path in paths:
    display.display(display.Markdown(f"`{os.path.relpath(path, workdir)}`"),
                    display.Image(filename=path))
  if not paths:
    print(f"no sample grids in {workdir}/samples")
  return paths


def plot_losses(workdir: str, keys=("d_loss", "g_loss")):
  """D and G loss per GAN over training (plots.gan_curves_figure of
  gan_metrics.jsonl), shown in the notebook."""
  # pylint: disable=g-import-not-at-top
  from gansynth.runtime import metrics_log
  from gansynth.scoring import plots
  path = paths.gan_metrics(workdir)
  if not os.path.exists(path):
    print(f"no {path} (stage train_gan has not run)")
    return None
  import io
  import numpy as np
  rows = metrics_log.read_jsonl(path)
  num_gans = len(np.atleast_1d(rows[0][keys[0]])) if rows else 0
  fig = plots.gan_curves_figure(rows, [str(k) for k in range(num_gans)], keys)
  try:
    from IPython import display
  except ImportError:
    return fig
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=100, bbox_inches="tight")
  display.display(display.Image(data=png.getvalue()))
  return fig


def show_results(workdir: str) -> str:
  """Renders results.md (and the evaluation report, if any) as Markdown."""
  from IPython import display  # pylint: disable=g-import-not-at-top
  text = ""
  for path in (paths.results_md(workdir), paths.report_md(workdir)):
    if os.path.exists(path):
      with open(path) as f:
        text += f.read() + "\n"
  if not text:
    text = f"*no results in {workdir} (stage classify has not run)*"
  display.display(display.Markdown(text))
  return text


def copy_with_gfile(src: str, dest: str) -> None:
  """Copies a local folder to any tf.io.gfile URL (gs://, ram://, ...)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for root, _, files in tf.io.gfile.walk(src):
    rel = os.path.relpath(root, src)
    target = dest.rstrip("/") + ("" if rel == "." else "/" + rel)
    tf.io.gfile.makedirs(target)
    for name in files:
      tf.io.gfile.copy(os.path.join(root, name), f"{target}/{name}",
                       overwrite=True)


def mount_drive() -> None:
  """Mounts Google Drive at /content/drive (Colab), unless it already is."""
  if not os.path.isdir("/content/drive/MyDrive"):
    from google.colab import drive  # pylint: disable=g-import-not-at-top
    drive.mount("/content/drive")


def show_images(images, scale: int = 4) -> None:
  """Displays uint8 images [n, H, W, C] in one row, scaled up (nearest)."""
  from IPython import display  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  row = np.concatenate(list(images), axis=1)
  row = row.repeat(scale, axis=0).repeat(scale, axis=1)
  display.display(Image.fromarray(row[..., 0] if row.shape[-1] == 1 else row))


def save_workdir(workdir: str, dest: str) -> str | None:
  """Copies the workdir to Google Drive (/content/drive/...) or GCS (gs://).

  Drive is mounted first, in Colab only; elsewhere a Drive destination is
  skipped. A gs:// destination is copied with tf.io.gfile (in Colab after
  authenticating). Returns the destination, or None if nothing was copied.
  """
  if not dest:
    return None
  if dest.startswith("gs://"):
    if in_colab():
      from google.colab import auth  # pylint: disable=g-import-not-at-top
      auth.authenticate_user()
    copy_with_gfile(workdir, dest)
    return dest
  if dest.startswith("/content/drive"):
    if not in_colab():
      print(f"not in Colab: Google Drive not mounted, {dest} skipped")
      return None
    mount_drive()
  shutil.copytree(workdir, dest, dirs_exist_ok=True)
  return dest
