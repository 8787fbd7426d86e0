"""One writer per workdir: a lock file held for the whole run.

`<workdir>/.lock` is locked with fcntl.flock, which the kernel releases when
its process ends (even by SIGKILL), so a lock left by a process that is gone
is simply taken over. The file says who holds it (pid, host, start time), so
a second run on the same workdir stops at once, naming the first.
`guard` turns a failure caused by the workdir itself (gone mid-run, disk
full) into one line that says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from typing import Iterator

from absl import logging

from gansynth import paths
from gansynth.config_schema import ConfigError


class WorkdirBusy(ConfigError):
  """Another process is running on the same workdir."""


class WorkdirError(ConfigError):
  """The workdir failed under the run: it vanished or its disk is full."""

NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def holder(path: str) -> str:
  """Who holds the lock at `path`, as its file says."""
  try:
    with open(path) as f:
      info = json.load(f)
    started = time.strftime("%Y-%m-%d %H:%M:%S",
                            time.localtime(info["started"]))
    return (f"gansynth process {info['pid']} on host {info['host']} "
            f"(started {started})")
  except (OSError, ValueError, KeyError, TypeError):
    return "another gansynth process"


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[str]:
  """Holds the lock of `workdir` for the `with` block; yields its path.

  Raises WorkdirBusy (a one-line message naming the running process) if
  another live process holds it.
  """
  path = paths.lock_file(workdir)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise ConfigError(f"--workdir={workdir} is not writable ({e.strerror}); "
                      "choose a directory you can write to") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      locked = True
    except OSError as e:
      if e.errno not in NO_LOCKS + (errno.EWOULDBLOCK, errno.EACCES):
        raise
      if e.errno not in NO_LOCKS:
        raise WorkdirBusy(
            f"--workdir={workdir} is in use by {holder(path)}; wait for it "
            "to finish, stop it, or choose another --workdir") from None
      logging.warning("--workdir=%s: its file system has no locks, so a "
                      "second run on it would not be stopped", workdir)
      locked = False
    if locked:
      if os.fstat(fd).st_size:
        logging.info("--workdir=%s: took over the lock of %s, which is gone",
                     workdir, holder(path))
      os.ftruncate(fd, 0)
      os.write(fd, json.dumps({"pid": os.getpid(),
                               "host": socket.gethostname(),
                               "started": time.time()}).encode())
    yield path
  finally:
    os.close(fd)  # releases the lock; the file stays (no unlink race)

@contextlib.contextmanager
def guard(workdir: str) -> Iterator[None]:
  """Re-raises a failure inside the block as WorkdirError if the workdir is
  gone or its disk is full (the real cause, whatever the library said)."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    reason = (str(e).splitlines() or [""])[0][:200]
    if "no longer exists" in str(e) or "disk is full" in str(e):
      raise  # already says so (e.g. a failed checkpoint save, what it kept)
    if not os.path.isdir(workdir):
      raise WorkdirError(
          f"--workdir={workdir} no longer exists: it was deleted or unmounted "
          f"during the run ({type(e).__name__}: {reason}). Bring it back and "
          "rerun the same command; what was stored there is reused") from e
    if disk_full(e):
      raise WorkdirError(
          f"the disk of --workdir={workdir} is full ({reason}); free space "
          "and rerun the same command, it resumes from what was stored") from e
    raise


def disk_full(e: BaseException | None) -> bool:
  """Whether `e`, or an error it was raised from, is ENOSPC."""
  while e is not None:
    if ((isinstance(e, OSError) and e.errno == errno.ENOSPC)
        or "No space left on device" in str(e)):
      return True
    e = e.__cause__ or e.__context__
  return False
