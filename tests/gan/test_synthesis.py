"""Synthesis: which generator samples, with which batch statistics."""

import jax
import numpy as np

from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.gan import gan_train
from gansynth.gan import synthesis


def test_standing_stats_make_inference_equal_training_mode(tiny_config):
  config = tiny_config
  config.gan.ema_decay = 0.5
  state = gan_train.create_state(config, jax.random.key(0))
  # An EMA generator unlike the raw one, so it is clear whose stats these are.
  gans = state.gans.replace(g_ema=jax.tree.map(lambda p: 1.5 * p,
                                               state.gans.g_ema))
  key, n = jax.random.key(3), 64
  standing = gan_train.standing_stats(config, gans, key, n)
  z = jax.random.normal(key, (10, n, config.gan.latent_dim))
  nets = gan_train.make_nets(config)
  in_training = jax.vmap(lambda g, z: nets.g_apply(
      {"params": g.g_ema, "batch_stats": g.g_stats}, z, None, train=True,
      mutable=["batch_stats"])[0])(gans, z)
  sampled = gan_train.make_sampler(config, nets)(standing, z)
  np.testing.assert_allclose(sampled, in_training, atol=2e-5)
  assert not np.allclose(gan_train.make_sampler(config, nets)(gans, z),
                         in_training, atol=1e-3)


def test_changing_the_generator_or_its_stats_remakes_the_source(tiny_config,
                                                                tmp_path):
  config = tiny_config
  config.gan.ema_decay = 0.5
  config.synthesis.update(num_per_class=4, batch_size=4)
  workdir = str(tmp_path)
  gan_train.train(config, workdir)

  def made():
    synthesis.synthesize(config, workdir)
    stamp = sources.read_stamp(workdir, "gan")
    return (stamp["ema"], stamp["standing_stats"],
            stamp[sources.DIGEST]["arrays"])

  ema = made()
  config.synthesis.use_ema = False
  raw = made()
  config.synthesis.standing_stats = 32
  raw_standing = made()
  assert [s[:2] for s in (ema, raw, raw_standing)] == [
      (True, 0), (False, 0), (False, 32)]
  assert len({s[2] for s in (ema, raw, raw_standing)}) == 3


def test_keep_fraction_keeps_the_samples_d_scores_most_real(tiny_config):
  """With keep_fraction 1/2 each class keeps, in the order drawn, the half of
  twice as many draws that its own D scores highest."""
  config = tiny_config
  state = gan_train.create_state(config, jax.random.key(0))
  config.synthesis.batch_size = 16
  drawn, labels = synthesis.generate(config, state, 8, seed=0)
  config.synthesis.keep_fraction = 0.5
  kept, kept_labels = synthesis.generate(config, state, 4, seed=0)
  k = config.data.num_classes
  np.testing.assert_array_equal(kept_labels, np.repeat(np.arange(k), 4))
  drawn = drawn.reshape((k, 8) + drawn.shape[1:])
  scores = np.asarray(gan_train.make_scorer(config)(
      state.gans, input_pipeline.to_float(drawn)))
  for c in range(k):
    best = np.sort(np.argsort(-scores[c], kind="stable")[:4])
    np.testing.assert_array_equal(kept[4 * c:4 * c + 4], drawn[c, best])
  # Not just the first draws: D's ranking changes which are kept.
  assert not np.array_equal(kept.reshape(drawn[:, :4].shape), drawn[:, :4])


def test_scorer_rows_are_each_classs_discriminator(tiny_config):
  config = tiny_config
  state = gan_train.create_state(config, jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), (10, 6) + (
      config.data.image_size, config.data.image_size, config.data.channels),
      minval=-1, maxval=1)
  scores = np.asarray(gan_train.make_scorer(config)(state.gans, images))
  assert scores.shape == (10, 6)
  nets = gan_train.make_nets(config)
  third = jax.tree.map(lambda a: a[3], state.gans)
  np.testing.assert_allclose(scores[3], nets.d_apply(
      {"params": third.d_params, "batch_stats": third.d_stats}, images[3],
      None, train=False).reshape(6), rtol=1e-5, atol=1e-5)


def test_conditional_scorer_gives_row_r_the_label_r(tiny_config):
  config = tiny_config
  config.gan.conditioning = "conditional"
  state = gan_train.create_state(config, jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), (10, 6) + (
      config.data.image_size, config.data.image_size, config.data.channels),
      minval=-1, maxval=1)
  scores = np.asarray(gan_train.make_scorer(config)(state.gans, images))
  nets = gan_train.make_nets(config)
  gan = jax.tree.map(lambda a: a[0], state.gans)
  for r in (0, 7):
    np.testing.assert_allclose(scores[r], nets.d_apply(
        {"params": gan.d_params, "batch_stats": gan.d_stats}, images[r],
        np.full(6, r, np.int32), train=False).reshape(6), rtol=1e-5,
        atol=1e-5)


def test_temperature_scales_the_latents(tiny_config):
  """At temperature t each class's G draws from t * z, the same z as at 1."""
  config = tiny_config
  config.synthesis.batch_size = 6
  state = gan_train.create_state(config, jax.random.key(0))
  plain, _ = synthesis.generate(config, state, 6, seed=0)
  config.synthesis.temperature = 1.5
  hot, labels = synthesis.generate(config, state, 6, seed=0)
  z = jax.random.normal(jax.random.fold_in(
      jax.random.fold_in(jax.random.key(0), 11), 0),
      (config.data.num_classes, 6, config.gan.latent_dim))
  want = input_pipeline.to_uint8(
      gan_train.make_sampler(config)(state.gans, 1.5 * z))
  np.testing.assert_array_equal(hot, want.reshape(hot.shape))
  assert not np.array_equal(hot, plain)
  np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 6))
