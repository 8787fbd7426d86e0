"""Process set-up shared by the command line, the Python API and notebooks.

TensorFlow only reads data (JAX owns the accelerators), its C++ start-up
banner is dropped, library INFO chatter is filtered, and the tfds messages
about data sets gansynth writes itself are silenced, while real downloads
keep their progress. Nothing here imports TF or JAX at module import time,
so `python -m gansynth.main --help` stays fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile

from absl import logging

# C++ lines TF prints on import, before any Python logging is set up.
_TF_BANNER = ("All log messages before absl::InitializeLog()",
              "oneDNN custom operations are on")


def import_tensorflow():
  """`import tensorflow`, without its C++ start-up banner on stderr.

  The banner is written by TF's shared libraries straight to file
  descriptor 2, so it is caught there; every other line is passed on to
  sys.stderr.
  """
  if "tensorflow" in sys.modules:
    return sys.modules["tensorflow"]
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec("tensorflow") is None:
    raise ImportError(
        "gansynth reads data with TensorFlow, which is not installed: "
        "pip install -e \".[tf]\" (tensorflow-cpu), or any tensorflow")
  fd = 2  # where C++ writes, whatever sys.stderr is (e.g. a notebook's)
  try:
    os.fstat(fd)
  except OSError:  # no stderr at all: import as is
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf
  sys.stderr.flush()
  saved = os.dup(fd)
  with tempfile.TemporaryFile() as caught:
    os.dup2(caught.fileno(), fd)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
    finally:
      os.dup2(saved, fd)
      os.close(saved)
    caught.seek(0)
    for line in caught.read().decode(errors="replace").splitlines():
      if line.strip() and not any(b in line for b in _TF_BANNER):
        print(line, file=sys.stderr)
  return tf


def prepare_libraries() -> None:
  """TF off the accelerators (it only reads data; JAX owns them)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  tf = import_tensorflow()
  try:
    tf.config.experimental.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices
    pass


def quiet_library_info(record) -> bool:
  """Hides INFO lines of Orbax, tfds and clu; their warnings still show."""
  noisy = ("/orbax/", "/tensorflow_datasets/", "/clu/")
  return record.levelno > logging.converter.STANDARD_INFO or not any(
      n in record.pathname for n in noisy)


def _below_error_from_tfds(record) -> bool:
  return not ("/tensorflow_datasets/" in record.pathname
              and record.levelno < logging.converter.STANDARD_ERROR)


@contextlib.contextmanager
def quiet_tfds(bars: bool = False):
  """For a data set gansynth prepares or writes itself: no tfds
  "Downloading and preparing ... Unknown size" lines or "has no
  dataset_info.json" warnings, and tfds' progress bars only with `bars`
  (e.g. a long import, where progress.enabled()). Errors still show."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top
  was_active = getattr(tqdm_utils, "_active", True)
  absl_logger = logging.get_absl_logger()
  absl_logger.addFilter(_below_error_from_tfds)
  if not bars:
    tfds.disable_progress_bar()
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    absl_logger.removeFilter(_below_error_from_tfds)
    if was_active:
      tfds.enable_progress_bar()


def user_errors() -> tuple[type[BaseException], ...]:
  """Errors that mean "fix the input and rerun": shown as one line."""
  # pylint: disable=g-import-not-at-top
  from gansynth.config_schema import ConfigError
  from gansynth.data.image_datasets import DatasetError
  from gansynth.gan.gan_train import NonFiniteError
  from gansynth.runtime.preemption import Preempted
  from gansynth.runtime.store import CheckpointError
  from gansynth.sim.procedural import NoFontError
  return (ConfigError, DatasetError, CheckpointError, NonFiniteError,
          Preempted, NoFontError)
