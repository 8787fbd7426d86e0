"""Progress bars for long work (GAN and classifier training, synthesis).

tqdm.auto: a text bar in a terminal, a widget in Jupyter/Colab. A bar is
shown only where it can redraw in place: a terminal or a notebook, not a
log file, a pipe or CI (where it would print a line per update). Set
GANSYNTH_PROGRESS=1 or 0 to force it on or off. Log lines written while a
bar is shown go through `write_mode`, so the bar is redrawn below them.
"""

from __future__ import annotations

import contextlib
import os
import sys


def in_notebook() -> bool:
  """Whether this runs in a Jupyter/Colab kernel."""
  ipython = sys.modules.get("IPython")
  try:
    return ipython is not None and (
        "IPKernelApp" in ipython.get_ipython().config)
  except Exception:  # pylint: disable=broad-except
    return False


def enabled() -> bool:
  forced = os.environ.get("GANSYNTH_PROGRESS", "")
  if forced in ("0", "1"):
    return forced == "1"
  if os.environ.get("CI"):
    return False
  if in_notebook():
    return True
  try:
    return sys.stderr.isatty()
  except (AttributeError, ValueError):
    return False


def bar(total: int, desc: str, initial: int = 0, unit: str = "step"):
  """A tqdm bar (disabled: a no-op object with the same methods)."""
  # pylint: disable=g-import-not-at-top
  import warnings
  with warnings.catch_warnings():  # "IProgress not found": falls back to text
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit=unit,
                disable=not enabled(), leave=False, dynamic_ncols=True,
                mininterval=0.5)


@contextlib.contextmanager
def write_mode():
  """Clears the bars while a log line is written, then redraws them."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  with tqdm.external_write_mode():
    yield
