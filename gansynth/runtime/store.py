"""The Orbax checkpoint store that every stage reads from and writes to.

Layout under a workdir (gansynth/paths.py; see checkpoints/README.md):
  checkpoints/gan/<step>/{state,meta}             all K GANs, stacked
  checkpoints/classifier/<source>_seed<s>_<data hash>/<step>/{state,meta}
Each checkpoint carries `meta` (JSON: what the state was built from), so a
stage refuses a store made by an incompatible config instead of loading
garbage. Orbax writes a step to a temporary directory and renames it when
complete, so a half-written checkpoint is never picked up.

Orbax checks that a checkpoint is complete, not that its bytes are the bytes
that were written. So `meta` also records a CRC32 of every array of the state
(and of `meta` itself); a restore recomputes them and treats a mismatch like
an unreadable step: warned about in one line and skipped for an older one.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from typing import Any, Callable, Mapping
import zlib

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from gansynth.runtime import parallel
from gansynth.runtime import workdir_lock

DIGESTS = "digests"  # meta key: {leaf path: crc32 hex} of the saved state
META_DIGEST = "meta_digest"  # meta key: crc32 of the rest of meta
COMMIT_MARKER = "commit_success.txt"  # Orbax's, in every finished step


class CheckpointError(RuntimeError):
  """The store holds no usable or no compatible checkpoint."""


class CorruptCheckpoint(CheckpointError):
  """One stored step cannot be used: unreadable, unfinished or corrupt."""


def manager(directory: str, max_to_keep: int = 3) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
      enable_async_checkpointing=False)
  try:
    return ocp.CheckpointManager(directory, options=options,
                                 item_names=("state", "meta"))
  except OSError as e:
    raise CheckpointError(f"cannot open the checkpoint store {directory} "
                          f"({os_reason(e)})") from None


# Digests.


def crc32(buffer) -> str:
  return f"{zlib.crc32(buffer):08x}"


def leaf_digests(state: Any) -> dict[str, str]:
  """CRC32 of each array leaf's bytes, by its path in the state.

  CRC32 because it runs at memory speed (zlib releases the GIL, so two
  threads hash two leaves at once); it guards against damage, not attack.
  """
  local = all(getattr(x, "is_fully_addressable", True)
              for x in jax.tree.leaves(state))
  host = jax.device_get(state) if local else parallel.to_host(state)
  leaves, _ = jax.tree_util.tree_flatten_with_path(host)
  names = [jax.tree_util.keystr(p, simple=True, separator="/")
           for p, _ in leaves]
  arrays = [np.ascontiguousarray(x).reshape(-1) for _, x in leaves]
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    return dict(zip(names, pool.map(crc32, arrays)))


def meta_digest(meta: Mapping[str, Any]) -> str:
  rest = {k: v for k, v in meta.items() if k != META_DIGEST}
  return crc32(json.dumps(rest, sort_keys=True).encode())


def with_digests(meta: Mapping[str, Any], state: Any) -> dict[str, Any]:
  """`meta` plus the digests of `state` and of itself, as saved."""
  out = dict(meta, **{DIGESTS: leaf_digests(state)})
  out[META_DIGEST] = meta_digest(out)
  return out


def first_mismatch(state: Any, digests: Mapping[str, str]) -> str | None:
  """The path of the first leaf of `state` whose bytes differ from the
  recorded digests (or that has none), else None."""
  actual = leaf_digests(state)
  for path, value in actual.items():
    if digests.get(path) != value:
      return path
  missing = sorted(set(digests) - set(actual))
  return missing[0] if missing else None


# Save.


def os_reason(e: BaseException) -> str:
  """A short reason for an OS-level failure, from `e` or what it wraps."""
  if workdir_lock.disk_full(e):
    return "the disk is full"
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.strerror:
      return seen.strerror
    seen = seen.__cause__ or seen.__context__
  return first_line(e)


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         meta: Mapping[str, Any]) -> None:
  """Saves `state` with `meta` and the digests of both.

  A failed save leaves the earlier steps as they were (Orbax only renames a
  step into place once it is complete) and says so in one line.
  """
  record = with_digests(meta, state)
  directory = os.fspath(mngr.directory)
  gone = CheckpointError(
      f"could not save checkpoint step {step}: {directory} no longer exists "
      "(deleted or unmounted during the run); bring it back and rerun the "
      "same command")
  if not os.path.isdir(directory):  # Orbax would quietly make a new one
    raise gone
  try:
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(record)),
              force=True)
    mngr.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    if not os.path.isdir(directory):
      raise gone from e
    mngr.reload()
    earlier = [s for s in mngr.all_steps() if s != step]
    kept = (f"the previous checkpoint (step {max(earlier)}) is kept"
            if earlier else "no earlier checkpoint exists")
    raise CheckpointError(
        f"could not save checkpoint step {step} to {directory} "
        f"({os_reason(e)}); {kept}. Fix that and rerun the same command to "
        "resume") from e


# Restore.


def restore_step(mngr: ocp.CheckpointManager, step: int, abstract_state: Any,
                 meta: Mapping[str, Any],
                 check: Callable[[Any], str | None] | None = None,
                 verified_only: bool = False) -> Any:
  """The state stored at `step`, its bytes checked against their digests.

  Raises CorruptCheckpoint (one line: step and reason, e.g. the leaf that
  does not match) if the step is unfinished, unreadable, corrupt, carries no
  digests while `verified_only`, or fails `check` (state -> problem or None);
  CheckpointError if it was made by another config.
  """
  where = f"{mngr.directory}/{step}"
  if not (mngr.directory / str(step) / COMMIT_MARKER).exists():
    raise CorruptCheckpoint(f"checkpoint {where} has no commit marker "
                            f"({COMMIT_MARKER}): an unfinished save")
  try:
    stored_meta = mngr.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"]
  except Exception as e:  # pylint: disable=broad-except
    raise CorruptCheckpoint(f"checkpoint {where} unreadable (meta: "
                            f"{first_line(e)})") from None
  digests = stored_meta.get(DIGESTS) if isinstance(stored_meta, dict) else None
  if digests is not None and stored_meta.get(META_DIGEST) != meta_digest(
      stored_meta):
    raise CorruptCheckpoint(f"checkpoint {where} is corrupt: its meta does "
                            "not match its digest")
  check_compatible(stored_meta, meta, where)
  if digests is None and verified_only:
    raise CorruptCheckpoint(f"checkpoint {where} carries no digests, so it "
                            "cannot be verified")
  try:
    state = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))["state"]
  except Exception as e:  # pylint: disable=broad-except
    raise CorruptCheckpoint(f"checkpoint {where} unreadable (state: "
                            f"{first_line(e)})") from None
  if digests is None:
    logging.info("checkpoint %s carries no digests (written by an older "
                 "gansynth): restored without verifying its bytes", where)
  else:
    bad = first_mismatch(state, digests)
    if bad is not None:
      raise CorruptCheckpoint(f"checkpoint {where} is corrupt: array {bad} "
                              "does not match the digest recorded at save")
  problem = check(state) if check else None
  if problem:
    raise CorruptCheckpoint(f"checkpoint {where} is corrupt: {problem}")
  return state


def restore_latest(mngr: ocp.CheckpointManager, abstract_state: Any,
                   meta: Mapping[str, Any],
                   check: Callable[[Any], str | None] | None = None,
                   verified_only: bool = False) -> Any | None:
  """The newest usable checkpoint, or None if the store is empty.

  A checkpoint whose meta differs from `meta` raises CheckpointError (it was
  made by another config). One that cannot be used (see `restore_step`) is
  skipped with a one-line warning in favour of the next older one; it is not
  deleted. If none can be used, CheckpointError says why for each.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  reasons = []
  for step in steps:
    try:
      return restore_step(mngr, step, abstract_state, meta, check,
                          verified_only)
    except CorruptCheckpoint as e:
      logging.warning("%s; trying an older step", e)
      reasons.append(str(e))
  if steps:
    raise CheckpointError(
        f"none of the checkpoints {steps} in {mngr.directory} can be used "
        f"({'; '.join(reasons)}); move the directory away to start over")
  return None


def first_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"


def check_compatible(stored: Mapping[str, Any], expected: Mapping[str, Any],
                     where: str) -> None:
  diffs = [f"{k}: stored {stored.get(k)!r}, config {v!r}"
           for k, v in expected.items() if stored.get(k) != v]
  if diffs:
    raise CheckpointError(
        f"checkpoint {where} was made with another config ({'; '.join(diffs)})."
        " Use a new --workdir, or the config that made it.")


def abstract(state: Any) -> Any:
  """Shapes and dtypes of `state`, as StandardRestore wants them."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
