"""DiffAugment: identity at strength 0, random otherwise, differentiable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth.gan import augment

ALL = "color,translation,cutout"


def images(n=6, size=8, channels=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, channels),
                            minval=-1, maxval=1)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", ALL])
def test_identity_at_strength_zero(policy):
  x = images()
  y = augment.diff_augment(jax.random.key(1), x, policy, strength=0.0)
  np.testing.assert_allclose(y, x, atol=1e-6)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout"])
def test_changes_images_and_keeps_shape(policy):
  x = images()
  y = augment.diff_augment(jax.random.key(1), x, policy)
  assert y.shape == x.shape
  assert float(jnp.abs(y - x).max()) > 0.1
  # The same key gives the same transform; another key another one.
  np.testing.assert_array_equal(
      y, augment.diff_augment(jax.random.key(1), x, policy))
  assert not np.array_equal(
      y, augment.diff_augment(jax.random.key(2), x, policy))


def test_translation_moves_pixels_and_zero_fills():
  x = jnp.ones((64, 8, 8, 1))
  y = augment.translation(jax.random.key(0), x)
  # Shifted by up to one pixel (1/8 of 8): each image keeps >= 7x7 of ones
  # and some have a zero border.
  kept = (y == 1).sum(axis=(1, 2, 3))
  assert int(kept.min()) >= 49 and float(y.min()) == 0.0


def test_cutout_zeroes_a_square_of_half_the_side():
  x = jnp.ones((32, 8, 8, 1))
  y = augment.cutout(jax.random.key(0), x)
  zeros = (y == 0).sum(axis=(1, 2, 3))
  assert int(zeros.max()) == 16 and int(zeros.min()) >= 4


def test_gradient_flows_through_every_policy():
  x = images()

  def f(x):
    return jnp.sum(augment.diff_augment(jax.random.key(3), x, ALL) ** 2)
  g = jax.grad(f)(x)
  assert g.shape == x.shape
  assert float(jnp.abs(g).sum()) > 0


def test_unknown_policy_is_rejected():
  with pytest.raises(ValueError, match="rotation"):
    augment.parse("color,rotation")


def test_random_shift_edge_mode_repeats_the_border():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  y = augment.random_shift(jax.random.key(5), jnp.repeat(x, 20, 0), 1,
                           mode="edge")
  # Every output pixel is a value of the input (no zeros brought in).
  assert set(np.unique(y).tolist()) <= set(range(16))
  assert augment.random_shift(jax.random.key(5), x, 0) is x


def test_random_flip_mirrors_about_half_the_images_and_keeps_the_rest():
  x = images(n=200)
  y = augment.random_flip(jax.random.key(3), x)
  mirrored = np.all(np.asarray(y) == np.asarray(x[:, :, ::-1]), axis=(1, 2, 3))
  kept = np.all(np.asarray(y) == np.asarray(x), axis=(1, 2, 3))
  assert np.all(mirrored ^ kept)
  assert 70 < mirrored.sum() < 130
