"""The Python API: stages as functions, a workdir as an object."""


import jax
import numpy as np
import pytest

import gansynth
from gansynth.config_schema import ConfigError


def test_train_load_and_sample(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  tiny_config.gan.train_steps = 4
  trained = gansynth.train(tiny_config, workdir)
  assert trained.results is None  # classify has not run

  run = gansynth.load(workdir)
  expected = tiny_config.to_dict()
  expected["stages"] = "train_gan"  # what gansynth.train ran
  assert run.config.to_dict() == expected
  assert isinstance(run.config.procedural.render.fonts, tuple)
  assert int(run.generators.step) == 4
  images = run.sample(3, n=5, seed=1)
  assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
  np.testing.assert_array_equal(images, run.sample("3", n=5, seed=1))
  assert not np.array_equal(images, run.sample(4, n=5, seed=1))
  assert not np.array_equal(images, run.sample(3, n=5, seed=2))
  with pytest.raises(ConfigError, match="outside"):
    run.sample(10)

  # A run with an EMA generator samples from its EMA weights.
  gans = run.generators.gans
  ema = jax.tree.map(lambda x: 0.5 * x, gans.g_params)
  run.__dict__["generators"] = run.generators.replace(
      gans=gans.replace(g_ema=ema))
  run.config.gan.ema_decay = 0.9
  run.__dict__.pop("_sampler", None)
  from_ema = run.sample(3, n=5, seed=1)
  assert not np.array_equal(from_ema, images)
  run.__dict__["generators"] = run.generators.replace(
      gans=gans.replace(g_params=ema))
  run.config.gan.ema_decay = 0.0
  run.__dict__.pop("_sampler", None)
  np.testing.assert_array_equal(run.sample(3, n=5, seed=1), from_ema)


def test_api_checks_like_the_command_line(tiny_config, tmp_path):
  tiny_config.gan.batch_size = -1
  with pytest.raises(ConfigError, match="config.gan.batch_size=-1"):
    gansynth.train(tiny_config, str(tmp_path / "run"))
  (tmp_path / "file").write_text("")
  tiny_config.gan.batch_size = 8
  with pytest.raises(ConfigError, match="is a file, not a directory"):
    gansynth.train(tiny_config, str(tmp_path / "file"))
  with pytest.raises(ConfigError, match="no config.json"):
    gansynth.load(str(tmp_path))
  with pytest.raises(ConfigError, match="configs: .*quickstart"):
    gansynth.train("quikstart", str(tmp_path / "run"))
