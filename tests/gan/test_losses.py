"""The GAN losses at known logits, and one update of a study GAN on the l1 loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth import models
from gansynth.gan import losses

BIG = 30.0  # sigmoid(BIG) == 1 in float32


@pytest.mark.parametrize("real,fake,want", [
    (0.0, 0.0, 1.0),     # D undecided: |1 - 0.5| + |0.5|
    (BIG, -BIG, 0.0),    # D right on both batches
    (-BIG, BIG, 2.0),    # D wrong on both batches
    (BIG, BIG, 1.0),     # everything called real
])
def test_l1_discriminator_loss_at_known_logits(real, fake, want):
  got = losses.discriminator_loss("l1", jnp.full((4,), real),
                                  jnp.full((4,), fake))
  assert float(got) == pytest.approx(want, abs=1e-6)


def test_l1_losses_are_mean_absolute_errors_of_the_sigmoid():
  real, fake = jax.random.normal(jax.random.key(0), (2, 16)) * 3
  p_real, p_fake = jax.nn.sigmoid(real), jax.nn.sigmoid(fake)
  np.testing.assert_allclose(
      losses.discriminator_loss("l1", real, fake),
      np.mean(np.abs(1 - p_real)) + np.mean(np.abs(p_fake)), rtol=1e-6)
  np.testing.assert_allclose(losses.generator_loss("l1", fake),
                             np.mean(1 - p_fake), rtol=1e-6)
  assert float(losses.generator_loss("l1", jnp.zeros(4))) == 0.5
  assert float(losses.generator_loss("l1", jnp.full(4, BIG))) == 0.0


@pytest.mark.parametrize("kind", losses.LOSSES)
def test_gradients_point_the_right_way(kind):
  """D lowers its loss by raising real logits and lowering fake ones; G by
  raising the logits of its fakes."""
  logits = jnp.linspace(-0.9, 0.9, 5)  # inside the hinge's margin
  d_real, d_fake = jax.grad(losses.discriminator_loss, argnums=(1, 2))(
      kind, logits, logits)
  g_fake = jax.grad(losses.generator_loss, argnums=1)(kind, logits)
  assert np.all(np.asarray(d_real) < 0) and np.all(np.asarray(d_fake) > 0)
  assert np.all(np.asarray(g_fake) < 0)


def test_bce_at_zero_logits():
  zeros = jnp.zeros(4)
  assert float(losses.discriminator_loss("bce", zeros, zeros)) == (
      pytest.approx(2 * np.log(2)))
  assert float(losses.generator_loss("bce", zeros)) == (
      pytest.approx(np.log(2)))


def test_unknown_loss_names_the_field():
  with pytest.raises(ValueError, match="config.gan.loss='wgan'"):
    losses.discriminator_loss("wgan", jnp.zeros(2), jnp.zeros(2))


def test_l1_loss_step_lowers_d_then_g_loss():
  """A small gradient step on the l1 loss lowers D's loss on the same
  batches, then G's loss against the updated D (finite, nonzero grads)."""
  config = config_schema.default_config().gan
  config.update(architecture="study", loss="l1", g_width=4, d_width=4,
                latent_dim=8, conv="lax")
  g, d = models.make_gan(config, 8, 1)
  z = jax.random.normal(jax.random.key(0), (16, 8))
  real = jax.random.uniform(jax.random.key(1), (16, 8, 8, 1), minval=-1)
  g_vars = g.init(jax.random.key(2), z, train=False)
  d_vars = d.init(jax.random.key(3), real, train=False)
  fake = g.apply(g_vars, z, train=False)

  def d_loss(params):
    run = lambda x: d.apply({**d_vars, "params": params}, x, train=False)
    return losses.discriminator_loss("l1", run(real), run(fake))

  def g_loss(params, d_params):
    fake = g.apply({**g_vars, "params": params}, z, train=False)
    return losses.generator_loss(
        "l1", d.apply({**d_vars, "params": d_params}, fake, train=False))

  def sgd(params, grads, lr=1e-2):
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    assert sum(float(jnp.sum(x * x)) for x in leaves) > 0
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)

  d_loss, g_loss = jax.jit(d_loss), jax.jit(g_loss)
  d_before, d_grads = jax.jit(jax.value_and_grad(d_loss))(d_vars["params"])
  d_params = sgd(d_vars["params"], d_grads)
  assert float(d_loss(d_params)) < float(d_before)
  g_before, g_grads = jax.jit(jax.value_and_grad(g_loss))(g_vars["params"],
                                                          d_params)
  g_params = sgd(g_vars["params"], g_grads)
  assert float(g_loss(g_params, d_params)) < float(g_before)
