"""Injected faults are caught, never silently used: the table of cases.

Each row damages something a run stores or depends on and says what must
happen: `fallback` (an older verified checkpoint is used, a one-line warning
names the damaged step), `kept` (harmless: the state restored is verified
bit for bit), `regenerate` (a synthetic set is made again), or an error
(type and words of its one-line message). Every row also checks that nothing
finished was deleted and that what was used equals what was stored.
"""

import errno
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
from orbax.checkpoint._src.handlers import json_checkpoint_handler
from PIL import Image
import pytest

from conftest import tiny
from gansynth import config_schema
from gansynth import paths
from gansynth import pipeline
from gansynth.config_schema import ConfigError
from gansynth.data import data_import
from gansynth.data import image_datasets
from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.data.image_datasets import DatasetError
from gansynth.gan import gan_train
from gansynth.runtime import store
from gansynth.runtime import workdir_lock
from gansynth.runtime.store import CheckpointError

STEPS = (2, 4)  # the stored GAN steps; faults hit the newest


@pytest.fixture(scope="module")
def gan_store(tfds_dir, tmp_path_factory):
  """A tiny GAN store with verified steps 2 and 4, and the states saved."""
  config = tiny(config_schema.default_config(), tfds_dir)
  directory = tmp_path_factory.mktemp("store") / "gan"
  mngr = store.manager(str(directory))
  states = {}
  for step in STEPS:
    state = gan_train.create_state(config, jax.random.key(step))
    state = state.replace(step=jnp.int32(step))
    store.save(mngr, step, state, gan_train.store_meta(config))
    states[step] = jax.device_get(state)
  return config, directory, states


class Env:
  """What a scenario works on: a fresh copy of the store, a tmp dir."""

  def __init__(self, gan_store, tmp_path, monkeypatch, caplog):
    self.config, source, self.states = gan_store
    self.tmp = tmp_path
    self.store = tmp_path / "workdir" / "checkpoints" / "gan"
    shutil.copytree(source, self.store)
    self.monkeypatch = monkeypatch
    self.caplog = caplog

  def restore(self):
    return gan_train.restore(self.config, store.manager(str(self.store)))

  def warnings(self):
    return [r.getMessage() for r in self.caplog.records
            if r.levelno >= logging.WARNING]


# Faults.


def flip(path, count=64):
  """Inverts `count` bytes in the middle of a file (a bad disk block)."""
  data = bytearray(path.read_bytes())
  start = max(0, len(data) // 2 - count // 2)
  for i in range(start, min(len(data), start + count)):
    data[i] ^= 0xFF
  path.write_bytes(bytes(data))


def largest(directory, pattern):
  return max(directory.glob(pattern), key=lambda p: p.stat().st_size)


def checkpoint_fault(pattern, damage=flip):
  """A scenario: `damage` to the largest file matching `pattern` in the
  newest step; returns which step was restored (and checks it bit for bit)."""
  def scenario(env):
    newest = env.store / str(STEPS[-1])
    damage(largest(newest, pattern))
    listing = sorted(os.listdir(env.store))
    state = jax.device_get(env.restore())
    step = int(state.step)
    chex.assert_trees_all_equal(state, env.states[step])
    assert sorted(os.listdir(env.store)) == listing  # nothing deleted
    if step == STEPS[-1]:
      return "kept"
    # This store's own step (an earlier test's orbax task, failing when it
    # is collected, can log another store's path).
    (warning,) = [w for w in env.warnings() if str(newest) in w]
    assert "\n" not in warning and "older step" in warning
    return "fallback"
  return scenario


def truncate(path):
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def delete(path):
  path.unlink()


def nan_in_old_checkpoint(env):
  """A checkpoint without digests (as written before they were recorded)
  whose GAN 3 is NaN: damage, not a divergence; the older step is used."""
  config, mngr = env.config, store.manager(str(env.store))
  bad = env.states[STEPS[-1]]
  g = jax.tree.map(lambda x: np.asarray(x).copy(), bad.gans.g_params)
  for leaf in jax.tree.leaves(g):
    leaf[3] = np.nan
  bad = bad.replace(gans=bad.gans.replace(g_params=g), step=np.int32(6))
  mngr.save(6, args=store.ocp.args.Composite(
      state=store.ocp.args.StandardSave(bad),
      meta=store.ocp.args.JsonSave(gan_train.store_meta(config))))
  state = env.restore()
  assert int(state.step) == STEPS[-1]
  (warning,) = [w for w in env.warnings() if "/6" in w]
  assert "GAN(s) [3] have non-finite parameters" in warning
  assert "learning_rate" not in warning
  return "fallback"


def old_checkpoint_without_digests(env):
  """Written before digests: restored, with a one-line note."""
  mngr = store.manager(str(env.store))
  state = env.states[STEPS[-1]].replace(step=np.int32(6))
  mngr.save(6, args=store.ocp.args.Composite(
      state=store.ocp.args.StandardSave(state),
      meta=store.ocp.args.JsonSave(gan_train.store_meta(env.config))))
  with env.caplog.at_level(logging.INFO):
    restored = env.restore()
  chex.assert_trees_all_equal(jax.device_get(restored), state)
  assert any("carries no digests" in r.getMessage()
             for r in env.caplog.records)
  return "kept"


def rollback_past_unverified_step(env):
  """A rollback restores only verified steps: not one without digests."""
  mngr = store.manager(str(env.store))
  mngr.save(6, args=store.ocp.args.Composite(
      state=store.ocp.args.StandardSave(env.states[STEPS[-1]]),
      meta=store.ocp.args.JsonSave(gan_train.store_meta(env.config))))
  state = gan_train.restore_or_create(env.config, mngr, verified_only=True)
  chex.assert_trees_all_equal(jax.device_get(state), env.states[STEPS[-1]])
  (warning,) = [w for w in env.warnings() if "/6" in w]
  assert "carries no digests, so it cannot be verified" in warning
  return "fallback"


def every_step_damaged(env):
  for step in STEPS:
    flip(largest(env.store / str(step), "state/ocdbt.process_0/d/*"))
  env.restore()


def failing_meta_write(error):
  """A scenario: the save of step 6 fails with OSError `error` while it
  writes (the disk fills, or turns read-only); step 4 must survive."""
  def scenario(env):
    def write(self, x, directory):
      raise OSError(error, os.strerror(error))
    env.monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler,
                            "_save_fn", write)
    try:
      store.save(store.manager(str(env.store)), 6, env.states[STEPS[-1]],
                 gan_train.store_meta(env.config))
    finally:
      env.monkeypatch.undo()
      state = jax.device_get(env.restore())
      assert int(state.step) == STEPS[-1]
      chex.assert_trees_all_equal(state, env.states[STEPS[-1]])
      assert sorted(int(s) for s in os.listdir(env.store)
                    if s.isdigit()) == list(STEPS)
  return scenario


def disk_fills_during_training(env):
  """The run resumes from step 4; its save of step 6 hits a full disk."""
  def write(self, x, directory):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  env.monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler,
                          "_save_fn", write)
  env.config.stages = "train_gan"
  try:
    pipeline.run(env.config, str(env.tmp / "workdir"))
  finally:
    env.monkeypatch.undo()
    state = jax.device_get(env.restore())
    chex.assert_trees_all_equal(state, env.states[STEPS[-1]])


def store_vanishes(env):
  mngr = store.manager(str(env.store))
  shutil.rmtree(env.tmp / "workdir")
  store.save(mngr, 6, env.states[STEPS[-1]], gan_train.store_meta(env.config))


def workdir_vanishes_mid_stage(env):
  workdir = str(env.tmp / "workdir")
  env.config.stages = "train_gan"

  def stage(config, workdir):
    shutil.rmtree(workdir)
    with open(os.path.join(workdir, "gan_metrics.jsonl"), "w"):
      pass
  env.monkeypatch.setattr(gan_train, "train", stage)
  pipeline.run(env.config, workdir)


def read_only_workdir(env):
  workdir = str(env.tmp / "workdir")
  real_open = open

  def read_only(path, mode="r", *args, **kwargs):
    if str(path).startswith(workdir) and set(mode) & set("wax+"):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    return real_open(path, mode, *args, **kwargs)
  env.monkeypatch.setattr("builtins.open", read_only)
  try:
    pipeline.run(env.config, workdir)
  finally:
    env.monkeypatch.undo()
    assert sorted(os.listdir(env.store)) == [str(s) for s in STEPS]


LOCK_HOLDER = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "elsewhere",
                         "started": time.time()}).encode())
print("locked", flush=True)
time.sleep(60)
"""


def concurrent_run(env):
  """Another process holds the workdir: stop at once, naming it; once it
  is gone, its lock is taken over."""
  workdir = env.tmp / "workdir"
  holder = subprocess.Popen(
      [sys.executable, "-c", LOCK_HOLDER, str(workdir / ".lock")],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"

    def no_stage(*args, **kwargs):
      raise AssertionError("a stage ran next to another run")
    env.monkeypatch.setattr(pipeline, "run_stages", no_stage)
    with pytest.raises(workdir_lock.WorkdirBusy) as info:
      pipeline.run(env.config, str(workdir))
    assert f"process {holder.pid} on host elsewhere" in str(info.value)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with workdir_lock.hold(str(workdir)) as path:  # the stale lock
    with open(path) as f:
      assert json.load(f)["pid"] == os.getpid()
  raise info.value


# Synthetic sets.


def synthetic_set(env, seed=0):
  """Writes (or keeps) a tiny synthetic set `gan`; returns what it made
  (None if it was kept)."""
  made = []

  def make_images():
    rng = np.random.default_rng(seed)
    made.append((rng.integers(0, 256, (30, 8, 8, 1), np.uint8),
                 np.repeat(np.arange(3, dtype=np.int32), 10)))
    return made[-1]
  sources.store_source(str(env.tmp / "workdir"), "gan", {"seed": seed},
                         make_images, 3, 2)
  return made[0] if made else None


def record_file(env):
  directory = paths.source_dir(str(env.tmp / "workdir"), "gan")
  return largest(pathlib.Path(directory), "*.tfrecord*")


def synthetic_regenerated(damage):
  """A scenario: the reused set is damaged, the rerun regenerates it, and
  what the classifier reads is what was made."""
  def scenario(env):
    first = synthetic_set(env)
    damage(env)
    again = synthetic_set(env)
    assert again is not None, "a damaged set was kept"
    chex.assert_trees_all_equal(again, first)
    assert any("cannot be vouched for" in w for w in env.warnings())
    chex.assert_trees_all_equal(
        sources.load_verified(str(env.tmp / "workdir"), "gan"), first)
    return "regenerate"
  return scenario


def stamp_without_digest(env):
  path = paths.source_stamp(str(env.tmp / "workdir"), "gan")
  with open(path) as f:
    stamp = json.load(f)
  del stamp[sources.DIGEST]
  with open(path, "w") as f:
    json.dump(stamp, f)


def synthetic_damaged_before_classify(env):
  synthetic_set(env)
  flip(record_file(env))
  sources.load_verified(str(env.tmp / "workdir"), "gan")


def synthetic_replaced(env):
  """Valid tfds files, but not the images the stamp vouches for."""
  synthetic_set(env)
  shutil.rmtree(paths.source_dir(str(env.tmp / "workdir"), "gan"))
  rng = np.random.default_rng(1)
  image_datasets.write_image_dataset(
      paths.synthetic_root(str(env.tmp / "workdir")), "gan",
      {"train": (rng.integers(0, 256, (30, 8, 8, 1), np.uint8),
                 np.repeat(np.arange(3), 10))}, 3)
  sources.load_verified(str(env.tmp / "workdir"), "gan")


def imported_record_damaged(env):
  """A record file of a data set imported with `prepare` is damaged."""
  source = env.tmp / "pets"
  for split, n in (("train", 4), ("test", 2)):
    for name in ("cat", "dog"):
      folder = source / split / name
      folder.mkdir(parents=True)
      for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(
            folder / f"{i}.png")
  data_dir = env.tmp / "tfds"
  data_import.prepare("pets", str(source), str(data_dir))
  flip(largest(data_dir / "pets", "*/*train.tfrecord*"), count=16)
  data = env.config.data
  data.name, data.data_dir, data.num_classes = "pets", str(data_dir), 2
  data.image_size, data.channels = 8, 3
  input_pipeline.load_split(data, "train")


FAULTS = [
    # (fault, scenario, outcome: "fallback" | "kept" | "regenerate" |
    #  (error type, words its one-line message must contain))
    ("flipped bytes in an array file",
     checkpoint_fault("state/ocdbt.process_0/d/*"), "fallback"),
    ("flipped bytes in the state's root data file",
     checkpoint_fault("state/d/*"), "fallback"),
    ("flipped bytes in the state's manifest",
     checkpoint_fault("state/manifest.ocdbt"), "fallback"),
    ("flipped bytes in the process manifest",
     checkpoint_fault("state/ocdbt.process_0/manifest.ocdbt"), "kept"),
    ("flipped bytes in the tree metadata",
     checkpoint_fault("state/_METADATA"), "fallback"),
    ("flipped bytes in the sharding file",
     checkpoint_fault("state/_sharding"), "kept"),
    ("flipped bytes in the array metadata",
     checkpoint_fault("state/array_metadatas/*"), "fallback"),
    ("flipped bytes in the meta JSON",
     checkpoint_fault("meta/metadata"), "fallback"),
    ("flipped bytes in the step metadata",
     checkpoint_fault("_CHECKPOINT_METADATA"), "kept"),
    ("truncated array file",
     checkpoint_fault("state/ocdbt.process_0/d/*", truncate), "fallback"),
    ("deleted commit marker",
     checkpoint_fault("commit_success.txt", delete), "fallback"),
    ("NaN in a checkpoint without digests", nan_in_old_checkpoint,
     "fallback"),
    ("checkpoint written before digests", old_checkpoint_without_digests,
     "kept"),
    ("rollback with an unverified newest step",
     rollback_past_unverified_step, "fallback"),
    ("every checkpoint damaged", every_step_damaged,
     (CheckpointError, "none of the checkpoints [4, 2]")),
    ("ENOSPC during a checkpoint save", failing_meta_write(errno.ENOSPC),
     (CheckpointError, "(the disk is full); the previous checkpoint (step 4) "
      "is kept")),
    ("ENOSPC during a training run", disk_fills_during_training,
     (CheckpointError, "step 6", "(the disk is full); the previous "
      "checkpoint (step 4) is kept")),
    ("read-only file system during a save", failing_meta_write(errno.EROFS),
     (CheckpointError, "(Read-only file system); the previous checkpoint "
      "(step 4) is kept")),
    ("store deleted before a save", store_vanishes,
     (CheckpointError, "no longer exists")),
    ("workdir deleted during a stage", workdir_vanishes_mid_stage,
     (workdir_lock.WorkdirError, "no longer exists: it was deleted or "
      "unmounted during the run")),
    ("read-only workdir", read_only_workdir,
     (ConfigError, "is not writable (Read-only file system)")),
    ("concurrent run on the workdir", concurrent_run,
     (workdir_lock.WorkdirBusy, "is in use by gansynth process")),
    ("flipped bytes in a synthetic set",
     synthetic_regenerated(lambda env: flip(record_file(env))), "regenerate"),
    ("truncated synthetic record file",
     synthetic_regenerated(lambda env: truncate(record_file(env))),
     "regenerate"),
    ("synthetic set stamped without a digest",
     synthetic_regenerated(stamp_without_digest), "regenerate"),
    ("synthetic set damaged before classify",
     synthetic_damaged_before_classify,
     (DatasetError, "gan-train.tfrecord", "is damaged",
      "--config.stages=synthesize")),
    ("synthetic set replaced by other images", synthetic_replaced,
     (DatasetError, "does not match the digest")),
    ("corrupt record file of an imported data set", imported_record_damaged,
     (DatasetError, "pets-train.tfrecord", "is damaged",
      "--config.stages=prepare")),
]


@pytest.mark.parametrize("scenario,outcome", [f[1:] for f in FAULTS],
                         ids=[f[0] for f in FAULTS])
def test_fault_is_caught_and_nothing_finished_is_lost(
    gan_store, tmp_path, monkeypatch, caplog, scenario, outcome):
  env = Env(gan_store, tmp_path, monkeypatch, caplog)
  caplog.set_level(logging.WARNING)
  if isinstance(outcome, str):
    assert scenario(env) == outcome
    return
  error, *words = outcome
  with pytest.raises(error) as info:
    scenario(env)
  message = str(info.value)
  assert all(w in message for w in words), message
  assert "\n" not in message.strip(), message
