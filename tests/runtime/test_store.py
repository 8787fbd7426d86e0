"""Checkpoint store: resume equals an uninterrupted run; bad stores refused."""

import glob
import os

import chex
import jax
import pytest

from gansynth import paths
from gansynth.gan import gan_train
from gansynth.gan import synthesis
from gansynth.runtime import store


def test_resumed_run_matches_uninterrupted_run(tiny_config, tmp_path):
  config = tiny_config
  full = gan_train.train(config, str(tmp_path / "full"))
  config.gan.train_steps = 4  # the first run stops at step 4 ...
  stopped = gan_train.train(config, str(tmp_path / "resumed"))
  assert int(stopped.step) == 4
  config.gan.train_steps = 6  # ... and the same command resumes it
  resumed = gan_train.train(config, str(tmp_path / "resumed"))
  assert int(resumed.step) == 6
  chex.assert_trees_all_equal(jax.device_get(full), jax.device_get(resumed))
  steps = store.manager(paths.gan_checkpoints(str(tmp_path / "resumed"))).all_steps()
  assert sorted(steps) == [2, 4, 6]


def test_synthesis_reads_generators_from_the_store(tiny_config, tmp_path):
  config = tiny_config
  trained = gan_train.train(config, str(tmp_path))
  loaded = gan_train.restore_trained(config, str(tmp_path))
  chex.assert_trees_all_equal(jax.device_get(trained.gans.g_params),
                              jax.device_get(loaded.gans.g_params))
  images, labels = synthesis.generate(config, loaded, 7, seed=0)
  assert images.shape == (70, 8, 8, 1) and labels.tolist()[::7] == list(
      range(10))


def test_store_from_another_config_is_refused(tiny_config, tmp_path):
  config = tiny_config
  gan_train.train(config, str(tmp_path))
  config.gan.g_width = 6
  with pytest.raises(store.CheckpointError, match="g_width: stored 4, config 6"):
    gan_train.train(config, str(tmp_path))


def test_missing_store_says_which_stage_to_run(tiny_config, tmp_path):
  with pytest.raises(store.CheckpointError, match="run the train_gan stage"):
    gan_train.restore_trained(tiny_config, str(tmp_path))


def test_corrupt_latest_checkpoint_falls_back_and_is_kept(tiny_config,
                                                         tmp_path):
  config = tiny_config
  gan_train.train(config, str(tmp_path))
  latest = os.path.join(paths.gan_checkpoints(str(tmp_path)), "6")
  for path in glob.glob(os.path.join(latest, "state", "**", "*"),
                        recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"garbage")
  state = gan_train.restore_trained(config, str(tmp_path))
  assert int(state.step) == 4
  assert os.path.isdir(latest)  # never deleted


def test_gan_restore_gives_the_saved_state_and_refuses_damage(tiny_config,
                                                              tmp_path):
  """gan_train.restore, the one way stages read GAN checkpoints: the saved
  state bit for bit; a NaN or damaged step refused by name (a given step)
  or skipped for an older one (the newest)."""
  config = tiny_config
  trained = jax.device_get(gan_train.train(config, str(tmp_path)))
  mngr = store.manager(paths.gan_checkpoints(str(tmp_path)))
  chex.assert_trees_all_equal(jax.device_get(gan_train.restore(config, mngr)),
                              trained)
  nan = trained.replace(step=trained.step + 2, gans=trained.gans.replace(
      g_params=jax.tree.map(lambda x: x * float("nan"),
                            trained.gans.g_params)))
  store.save(mngr, 8, nan, gan_train.store_meta(config))  # digests match
  with pytest.raises(store.CorruptCheckpoint, match="non-finite"):
    gan_train.restore(config, mngr, 8)
  chex.assert_trees_all_equal(jax.device_get(gan_train.restore(config, mngr)),
                              trained)
  for path in glob.glob(os.path.join(paths.gan_checkpoints(str(tmp_path)), "4",
                                     "state", "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"garbage")
  with pytest.raises(store.CorruptCheckpoint, match="checkpoint .*/4"):
    gan_train.restore(config, mngr, 4)
  assert int(gan_train.restore(config, mngr, 6).step) == 6
