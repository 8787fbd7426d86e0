"""The small-data GAN options: each does what it says, in the K-GAN step."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import models
from gansynth import paths
from gansynth.gan import gan_train
from gansynth.gan import losses
from gansynth.runtime import store
from test_gan_train import assert_k_step_equals_separate_steps
from test_gan_train import single_step, small_problem, take


def all_options(config):
  config.gan.loss = "hinge"
  config.gan.diffaugment = "color,translation,cutout"
  config.gan.ema_decay = 0.9
  config.gan.ema_start = 1
  config.gan.spectral_norm = True
  config.gan.r1_gamma = 1.0
  config.gan.mbstd = True
  config.gan.n_critic = 2
  return config


@pytest.mark.slow  # seven options in one step: a long compile
@pytest.mark.parametrize("strategy", ["vmap", "unroll", "conv_unroll"])
def test_k_gan_step_with_every_option_equals_separate_steps(tiny_config,
                                                            strategy):
  config = all_options(tiny_config)
  config.gan.strategy = strategy
  gans = assert_k_step_equals_separate_steps(config, k=2, tol=1e-4)
  # n_critic: two D updates and one G update in the step.
  assert int(take(gans, 0).d_opt[0].count) == 2
  assert int(take(gans, 0).g_opt[0].count) == 1


def run_one_step(config, step=3):
  data = small_problem(config, k=1)
  gan = take(gan_train.create_state(config, jax.random.key(0)).gans, 0)
  new, _ = single_step(config)(gan, data.images[0], data.counts[0],
                               jnp.int32(step))
  return gan, new


@pytest.mark.slow  # long compile; CI's second step
def test_ema_is_the_weights_at_decay_zero_and_lags_otherwise(tiny_config):
  config = tiny_config
  _, new = run_one_step(config)
  chex.assert_trees_all_equal(new.g_ema, new.g_params)
  config.gan.ema_decay = 0.9
  old, new = run_one_step(config)
  expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, old.g_ema,
                          new.g_params)
  chex.assert_trees_all_close(new.g_ema, expected, atol=1e-7)
  config.gan.ema_start = 10  # before the start step it follows the weights
  _, new = run_one_step(config, step=3)
  chex.assert_trees_all_equal(new.g_ema, new.g_params)


def test_sampler_uses_the_ema_generator(tiny_config):
  config = tiny_config
  config.gan.ema_decay = 0.5
  state = gan_train.create_state(config, jax.random.key(0))
  zero_ema = state.gans.replace(
      g_ema=jax.tree.map(jnp.zeros_like, state.gans.g_ema))
  noise = gan_train.fixed_noise(config, 2)
  from_ema = gan_train.make_sampler(config)(zero_ema, noise)
  config.synthesis.use_ema = False
  from_weights = gan_train.make_sampler(config)(zero_ema, noise)
  assert not np.allclose(from_ema, from_weights)
  config.synthesis.use_ema = True
  chex.assert_trees_all_close(
      gan_train.make_sampler(config)(state.gans, noise), from_weights)


def input_gradient_norms(d, variables, x):
  grads = jax.vmap(jax.grad(lambda im: d.apply(variables, im[None],
                                                train=False)[0]))(x)
  return jnp.sqrt(jnp.sum(grads ** 2, axis=(1, 2, 3)))


@pytest.mark.parametrize("arch", [
    pytest.param("study", marks=pytest.mark.slow), "dcgan"])
def test_spectral_norm_bounds_the_discriminators_lipschitz_constant(arch):
  """With every layer's (flattened) kernel normalised to spectral norm 1, a
  3x3 (5x5) conv has operator norm <= 3 (5), activations and pooling are
  1-Lipschitz: |grad_x D| <= 3**3 (5**3) however large the weights."""
  cfg = dict(architecture=arch, dtype="float32", g_width=8,
             d_width=8, mbstd=False)
  bound = (3 if arch == "study" else 5) ** 3
  x = jax.random.normal(jax.random.key(1), (16, 8, 8, 1))
  norms = {}
  for sn in (False, True):
    _, d = models.make_gan(_Cfg(spectral_norm=sn, **cfg), 8, 1)
    variables = d.init(jax.random.key(0), x, train=False)
    variables = {**variables, "params": jax.tree.map(lambda p: 30.0 * p,
                                                     variables["params"])}
    if sn:  # Converge the power iteration (it advances when training).
      for _ in range(50):
        _, upd = d.apply(variables, x, train=True, mutable=["batch_stats"])
        variables = {**variables, **upd}
      assert "batch_stats" in variables
    norms[sn] = float(input_gradient_norms(d, variables, x).max())
  assert norms[True] <= bound
  assert norms[False] > 10 * bound  # what the bound is protecting against


class _Cfg(dict):
  __getattr__ = dict.__getitem__


def test_hinge_loss_values():
  real, fake = jnp.array([2.0, 0.5]), jnp.array([-2.0, 0.0])
  # D: relu(1 - real) = [0, 0.5], relu(1 + fake) = [0, 1].
  assert float(losses.discriminator_loss("hinge", real, fake)) == 0.75
  assert float(losses.generator_loss("hinge", fake)) == 1.0


def test_r1_penalty_of_a_linear_discriminator_is_its_weight_norm():
  w = jax.random.normal(jax.random.key(0), (4, 4, 1))
  d = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  x = jax.random.normal(jax.random.key(1), (3, 4, 4, 1))
  np.testing.assert_allclose(losses.r1_penalty(d, x), jnp.sum(w ** 2),
                             rtol=1e-5)


def test_minibatch_std_appends_the_batch_spread():
  same = jnp.ones((8, 2, 2, 3))
  out = models.minibatch_std(same)
  assert out.shape == (8, 2, 2, 4)
  np.testing.assert_allclose(out[..., 3], 1e-4, atol=1e-6)  # sqrt(1e-8)
  varied = jax.random.normal(jax.random.key(0), (8, 2, 2, 3))
  assert float(models.minibatch_std(varied)[..., 3].min()) > 0.3
  assert models.minibatch_std(varied[:6]).shape == (6, 2, 2, 4)


def whole_and_resumed(config, root):
  """Final stored states of a 4-step run and of a run stopped at 2, resumed."""
  config.gan.train_steps = 4
  gan_train.train(config, str(root / "whole"))
  config.gan.train_steps = 2
  gan_train.train(config, str(root / "resumed"))
  config.gan.train_steps = 4
  gan_train.train(config, str(root / "resumed"))

  def final(name):
    mngr = store.manager(paths.gan_checkpoints(str(root / name)))
    return gan_train.restore(config, mngr)
  return final("whole"), final("resumed")


@pytest.mark.slow  # long compile; CI's second step
def test_resume_is_bit_identical_with_every_option_on(tiny_config, tmp_path):
  whole, resumed = whole_and_resumed(all_options(tiny_config), tmp_path)
  assert int(whole.step) == int(resumed.step) == 4
  chex.assert_trees_all_equal(whole, resumed)
