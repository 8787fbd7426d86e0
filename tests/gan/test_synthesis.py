"""Synthesis: which generator samples, with which batch statistics."""

import jax
import numpy as np

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
