"""Every shipped config loads and validates; data sets work as configured."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import REPO, tiny
from gansynth import config_schema
from gansynth.data import input_pipeline
from gansynth.data.image_datasets import DatasetError
from gansynth.gan import gan_train

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def load(path, variant=""):
  spec = importlib.util.spec_from_file_location("cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_validates_and_names_a_tfds_data_set(path):
  config = load(path)
  config_schema.validate(config)
  assert config.data.name in tfds.list_builders() or (
      config.data.name == "sklearn_digits")


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_tiny_variant_keeps_data_and_nets_and_shrinks_the_rest(path):
  full, tiny_ = load(path), load(path, "tiny")
  config_schema.validate(tiny_)
  assert tiny_.data == full.data and tiny_.stages == full.stages
  assert (tiny_.gan.architecture, tiny_.gan.loss) == (
      full.gan.architecture, full.gan.loss)
  for section, field in (("gan", "g_width"), ("gan", "train_steps"),
                         ("synthesis", "num_per_class"),
                         ("classifier", "train_steps")):
    assert tiny_[section][field] < full[section][field], (section, field)
  with pytest.raises(config_schema.ConfigError, match="variant 'big'"):
    load(path, "big")


@pytest.mark.slow  # a tiny run on mock CelebA
def test_celeba_pipeline_on_mock_data(tfds_dir, tmp_path):
  """CelebA (no labels, 218x178) -> 64x64 crops -> one unconditional GAN."""
  config = tiny(load(os.path.join(REPO, "configs", "celeba.py")), tfds_dir)
  config.gan.train_steps = 2
  config.gan.batch_size = 4
  config.gan.grid_per_class = 4
  with tfds.testing.mock_data(num_examples=12):
    images, labels = input_pipeline.load_split(config.data, "train")
    assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8
    assert set(labels.tolist()) == {0}
    state = gan_train.train(config, str(tmp_path))
  assert jax.tree.leaves(state.gans.g_params)[0].shape[0] == 1  # K = 1
  assert (tmp_path / "samples" / "gan_step000002.png").exists()


def test_missing_offline_data_names_the_files_to_supply(tiny_config,
                                                        tmp_path):
  config = tiny_config
  config.data.name = "mnist"
  config.data.data_dir = str(tmp_path)
  with pytest.raises(DatasetError, match="(?s)train-images-idx3-ubyte.*"
                     "--config.stages=prepare"):
    input_pipeline.load_split(config.data, "train")


@pytest.mark.parametrize("name", ["mnist.py", "fashion_mnist.py"])
def test_cpu_variant_shrinks_the_gans_and_keeps_the_recipe(name):
  full, cpu = (load(os.path.join(REPO, "configs", name), v)
               for v in ("", "cpu"))
  config_schema.validate(cpu)
  assert cpu.gan.g_width < full.gan.g_width
  assert cpu.gan.train_steps <= full.gan.train_steps
  for field in ("loss", "diffaugment", "ema_decay", "mbstd"):
    assert cpu.gan[field] == full.gan[field], field
