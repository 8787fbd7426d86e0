"""One class-conditional GAN (gan.conditioning="conditional") in the K-GAN
machinery: labels reach G and D, batches are balanced, it learns, it
synthesizes labelled classes, it resumes bit-identically."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.gan import gan_train
from gansynth.gan import synthesis
from test_gan_options import all_options, whole_and_resumed


def conditional(config):
  config.gan.conditioning = "conditional"
  config.gan.batch_size = 20  # two images of each of the ten digits
  return config


def randomise_embeddings(params, key):
  """Class embeddings start label-blind (gamma 1, beta 0); make them not."""
  def perturb(path, x):
    if any("Embed" in str(p) or "class_projection" in str(p) for p in path):
      return x + jax.random.normal(jax.random.fold_in(key, x.size), x.shape)
    return x
  return jax.tree_util.tree_map_with_path(perturb, params)


@pytest.mark.parametrize("arch", ["study", "dcgan"])
def test_conditional_nets_depend_on_the_label(tiny_config, arch):
  config = conditional(tiny_config)
  config.gan.architecture = arch
  config.gan.mbstd = config.gan.spectral_norm = True
  nets = gan_train.make_nets(config)
  g, d = nets.generator, nets.discriminator
  z = jax.random.normal(jax.random.key(0), (4, config.gan.latent_dim))
  zeros, ones = jnp.zeros(4, jnp.int32), jnp.ones(4, jnp.int32)
  g_vars = g.init(jax.random.key(1), z, zeros, train=False)
  g_vars = {**g_vars, "params": randomise_embeddings(g_vars["params"],
                                                     jax.random.key(2))}
  x0, x1 = (g.apply(g_vars, z, y, train=False) for y in (zeros, ones))
  assert x0.shape == (4, 8, 8, 1)
  assert float(jnp.max(jnp.abs(x0 - x1))) > 1e-3
  d_vars = d.init(jax.random.key(3), x0, zeros, train=False)
  d0, d1 = (d.apply(d_vars, x0, y, train=False) for y in (zeros, ones))
  assert float(jnp.max(jnp.abs(d0 - d1))) > 1e-4  # the projection term
  with pytest.raises(ValueError, match="without labels"):
    g.apply(g_vars, z, train=False)


def test_balanced_batch_draws_each_label_from_its_class():
  k, n = 3, 9
  counts = np.array([5, 9, 7], np.int32)
  images = np.zeros((k, n, 2, 2, 1), np.uint8)
  for c in range(k):
    images[c, :counts[c]] = 10 * (c + 1)  # padding stays 0
  for step in range(6):
    x, y = input_pipeline.balanced_batch(jax.random.key(0), images, counts,
                                         7, jnp.int32(step))
    assert np.bincount(np.asarray(y), minlength=k).tolist() == [3, 2, 2]
    pixel = np.round((np.asarray(x[:, 0, 0, 0]) + 1) * 127.5)
    np.testing.assert_array_equal(pixel, 10 * (np.asarray(y) + 1))


@pytest.mark.slow  # trains tiny runs; CI's second step
def test_conditional_gan_learns_on_real_digits(tiny_config, tmp_path):
  """Default strategy: D learns to tell real from fake, nothing is NaN, and
  the fixed-noise grid has a row per class."""
  config = conditional(tiny_config)
  config.gan.g_width = config.gan.d_width = 8
  config.gan.learning_rate = 1e-3
  config.gan.train_steps = 30
  config.gan.log_every = 5
  config.gan.checkpoint_every = 30
  state = gan_train.train(config, str(tmp_path))
  assert jax.tree.leaves(state.gans.g_params)[0].shape[0] == 1  # K = 1
  with open(tmp_path / "gan_metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert rows[-1]["step"] == 30
  for row in rows:
    for name in gan_train.METRICS:
      assert np.all(np.isfinite(row[name])), (row["step"], name)
  assert np.mean(rows[-1]["d_loss"]) < np.mean(rows[0]["d_loss"]) - 0.1
  assert np.mean(rows[-1]["d_real"]) > np.mean(rows[-1]["d_fake"])
  grid = gan_train.make_sampler(config)(
      state.gans, gan_train.fixed_noise(config, 3))
  assert grid.shape == (10, 3, 8, 8, 1)
  # Same noise, another label: another image.
  assert float(jnp.max(jnp.abs(grid[0] - grid[1]))) > 1e-3


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory, tfds_dir):
  from conftest import tiny  # pylint: disable=g-import-not-at-top
  config = all_options(conditional(tiny(config_schema.default_config(),
                                        tfds_dir)))
  root = tmp_path_factory.mktemp("conditional")
  return (config, root) + whole_and_resumed(config, root)


@pytest.mark.slow  # trains tiny runs; CI's second step
def test_resume_is_bit_identical_with_conditioning_and_every_option(
    resumed_runs):
  _, _, whole, resumed = resumed_runs
  assert int(whole.step) == int(resumed.step) == 4
  chex.assert_trees_all_equal(whole, resumed)


@pytest.mark.slow  # trains tiny runs; CI's second step
def test_synthesis_writes_balanced_labelled_classes(resumed_runs):
  config, root, _, _ = resumed_runs
  config.synthesis.num_per_class = 7
  config.synthesis.batch_size = 4  # two sampler calls, the second cut short
  synthesis.synthesize(config, str(root / "whole"))
  images, labels = sources.load_verified(str(root / "whole"), "gan")
  assert images.shape == (70, 8, 8, 1)
  assert np.bincount(labels).tolist() == [7] * 10
  assert (root / "whole" / "samples" / "gan_synthetic.png").exists()


def test_bad_conditioning_is_named_in_one_line(tiny_config):
  tiny_config.gan.conditioning = "joint"
  with pytest.raises(config_schema.ConfigError) as info:
    config_schema.validate(tiny_config)
  message = str(info.value)
  assert message.startswith("config.gan.conditioning='joint': choose one of")
  assert "\n" not in message
