"""The Orbax checkpoint store that every stage reads from and writes to.

Layout under a workdir (see checkpoints/README.md):
  checkpoints/gan/<step>/{state,meta}             all K GANs, stacked
  checkpoints/classifier/<source>_seed<s>_<data hash>/<step>/{state,meta}
Each checkpoint carries `meta` (JSON: what the state was built from), so a
stage refuses a store made by an incompatible config instead of loading
garbage. Orbax writes a step to a temporary directory and renames it when
complete, so a half-written checkpoint is never picked up.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import logging
import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """The store holds no usable or no compatible checkpoint."""


def gan_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints", "gan")


def classifier_dir(workdir: str, source: str, seed: int,
                   data_fingerprint: str) -> str:
  """One classifier per source, seed and exact training set."""
  return os.path.join(os.path.abspath(workdir), "checkpoints", "classifier",
                      f"{source}_seed{seed}_{data_fingerprint}")


def manager(directory: str, max_to_keep: int = 3) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options,
                               item_names=("state", "meta"))


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         meta: Mapping[str, Any]) -> None:
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))),
            force=True)
  mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager, abstract_state: Any,
                   meta: Mapping[str, Any]) -> Any | None:
  """The newest readable checkpoint, or None if the store is empty.

  A checkpoint whose meta differs from `meta` raises CheckpointError (it was
  made by another config). One that cannot be read (corrupt files) is
  skipped with a warning in favour of the next older one; it is not deleted.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  for step in steps:
    try:
      stored_meta = mngr.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("checkpoint %s/%d unreadable (%s); trying an older one",
                      mngr.directory, step, e)
      continue
    check_compatible(stored_meta, meta, f"{mngr.directory}/{step}")
    try:
      restored = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("checkpoint %s/%d unreadable (%s); trying an older one",
                      mngr.directory, step, e)
      continue
    return restored["state"]
  if steps:
    raise CheckpointError(
        f"none of the checkpoints {steps} in {mngr.directory} can be read; "
        "move the directory away to start over")
  return None


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
