"""Runs that survive NaNs, SIGTERM and SIGKILL, and repeat exactly."""

import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from conftest import REPO, load_config, tiny
from conftest import nan_in_gan_2_at_step_4
from gansynth import paths
from gansynth import pipeline
from gansynth.gan import gan_train
from gansynth.runtime import store


def poison_gan_2_at_step_4(monkeypatch):
  monkeypatch.setattr(gan_train, "make_train_chunk",
                      nan_in_gan_2_at_step_4(gan_train.make_train_chunk))


def test_nan_stops_with_gan_and_step_and_keeps_checkpoints(
    tiny_config, tmp_path, monkeypatch):
  poison_gan_2_at_step_4(monkeypatch)
  with pytest.raises(gan_train.NonFiniteError,
                     match=r"GAN\(s\) \[2\] became non-finite .* step 4"):
    gan_train.train(tiny_config, str(tmp_path))
  assert store.manager(paths.gan_checkpoints(str(tmp_path))).all_steps() == [2]


def test_nan_rollback_keeps_the_other_gans_progress(tiny_config, tmp_path,
                                                    monkeypatch):
  clean = gan_train.train(tiny_config, str(tmp_path / "clean"))
  poison_gan_2_at_step_4(monkeypatch)
  tiny_config.gan.on_nonfinite = "rollback"
  rolled = gan_train.train(tiny_config, str(tmp_path / "rolled"))
  assert int(rolled.step) == 6
  assert bool(np.all(gan_train.params_finite(rolled.gans)))
  others = [k for k in range(10) if k != 2]
  take = lambda s: jax.tree.map(lambda x: np.asarray(x)[others], s.gans)
  chex.assert_trees_all_equal(take(clean), take(rolled))


CLI_TINY = [  # on top of quickstart.py:tiny
    "--config.stages=train_gan", "--config.gan.log_every=1",
    "--config.gan.checkpoint_every=3",
]


def start_main(workdir, tfds_dir, steps):
  cmd = [sys.executable, "-m", "gansynth.main", "--config",
         os.path.join(REPO, "configs", "quickstart.py:tiny"), "--workdir",
         str(workdir), f"--config.data.data_dir={tfds_dir}",
         f"--config.gan.train_steps={steps}", *CLI_TINY]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(workdir, proc, timeout=300):
  directory = paths.gan_checkpoints(str(workdir))
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.isdir(directory) and any(
        d.isdigit() for d in os.listdir(directory)):
      return
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    time.sleep(0.2)
  raise TimeoutError("no checkpoint appeared")


def final_state(config, workdir):
  mngr = store.manager(paths.gan_checkpoints(str(workdir)))
  return jax.device_get(gan_train.restore(config, mngr))


STEPS = 40


@pytest.fixture(scope="module")
def uninterrupted(tfds_dir, tmp_path_factory):
  """The store of a run of STEPS steps that was never interrupted."""
  workdir = tmp_path_factory.mktemp("straight")
  proc = start_main(workdir, tfds_dir, STEPS)
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-2000:]
  return workdir


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM],
                         ids=["sigkill", "sigterm"])
def test_killed_run_resumes_to_the_uninterrupted_result(
    tiny_config, tfds_dir, tmp_path, uninterrupted, sig):
  steps = STEPS
  proc = start_main(tmp_path / "killed", tfds_dir, steps)
  wait_for_checkpoint(tmp_path / "killed", proc)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode != 0
  if sig == signal.SIGTERM:
    assert "SIGTERM at GAN step" in err and "checkpoint saved" in err
  stopped_at = store.manager(
      paths.gan_checkpoints(str(tmp_path / "killed"))).latest_step()
  assert 0 < stopped_at < steps
  resumed = start_main(tmp_path / "killed", tfds_dir, steps)
  _, err = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, err[-2000:]
  assert f"resuming from step {stopped_at}" in err
  config = tiny(load_config("quickstart:tiny"), tfds_dir)  # what ran
  chex.assert_trees_all_equal(final_state(config, tmp_path / "killed"),
                              final_state(config, uninterrupted))


def results_without_timings(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  for r in results["sources"].values():
    del r["seconds"]
  return results


def test_same_seed_same_results_other_seed_other_samples(tiny_config,
                                                         tmp_path):
  config = tiny_config
  for name in ("a", "b"):
    pipeline.run(config, str(tmp_path / name))
  config.seed = 1
  pipeline.run(config, str(tmp_path / "c"))
  assert (results_without_timings(tmp_path / "a") ==
          results_without_timings(tmp_path / "b"))
  grid = lambda name: (tmp_path / name / "samples" /
                       "gan_synthetic.png").read_bytes()
  assert grid("a") == grid("b")
  assert grid("a") != grid("c")
