"""Stopping cleanly on SIGTERM (preemptible VMs, Colab, cluster schedulers).

The training loop checks `StopSignal.requested` after each chunk of steps;
when set it saves a checkpoint at the current step and raises `Preempted`,
so the same command resumes exactly there. SIGKILL cannot be caught: then
the newest complete checkpoint is used (Orbax never exposes a partial one).
"""

from __future__ import annotations

import signal
import threading


class Preempted(RuntimeError):
  """Training stopped on a signal after saving a checkpoint."""


class StopSignal:
  """Context manager: records SIGTERM instead of dying on it."""

  def __init__(self, signals=(signal.SIGTERM,)):
    self.signals = signals
    self.requested = None  # the signal's name once one arrived
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.requested = signal.Signals(signum).name

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    return False
