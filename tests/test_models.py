"""Model shapes and value ranges at every supported resolution, and the
fast pooling and upsampling layers against their plain forms."""

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth import matmul_conv
from gansynth import models


def gan_config(arch):
  config = config_schema.default_config().gan
  config.update(architecture=arch, g_width=4, d_width=4)
  return config


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
@pytest.mark.parametrize("size,channels", [(8, 1), (16, 1), (28, 1),
                                           (32, 3), (64, 3)])
def test_gan_shapes_and_ranges(arch, size, channels):
  g, d = models.make_gan(gan_config(arch), size, channels)
  z = jax.random.normal(jax.random.key(0), (3, 100))
  g_vars = g.init(jax.random.key(1), z, train=False)
  images = g.apply(g_vars, z, train=False)
  assert images.shape == (3, size, size, channels)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  # Scaled-up weights drive the output into its bounds, not past them.
  big = jax.tree.map(lambda x: 50.0 * x, g_vars)
  saturated = jnp.abs(g.apply(big, z, train=False))
  assert 0.99 < float(jnp.max(saturated)) <= 1.0
  d_vars = d.init(jax.random.key(2), images, train=False)
  logits = d.apply(d_vars, images, train=False)
  assert logits.shape == (3,)
  assert np.all(np.isfinite(logits))


@pytest.mark.parametrize("size,channels", [(8, 1), (28, 1), (32, 3)])
def test_classifier_shapes(size, channels):
  model = models.Classifier(num_classes=10, width=4)
  x = jnp.zeros((2, size, size, channels))
  params = model.init(jax.random.key(0), x)
  logits, features = model.apply(params, x, return_features=True)
  assert logits.shape == (2, 10)
  assert features.ndim == 2 and features.shape[0] == 2


def test_study_architecture_layer_counts():
  """Study nets: G dense + 3 convs, D 3 convs + dense, classifier 6 convs."""
  g, d = models.make_gan(gan_config("study"), 32, 3)
  g_params = g.init(jax.random.key(0), jnp.zeros((1, 100)))["params"]
  d_params = d.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  c_params = models.Classifier(10, 4).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  count = lambda p, kind: sum(k.startswith(kind) for k in p)
  assert (count(g_params, "Dense"), count(g_params, "Conv")) == (1, 3)
  assert (count(d_params, "Conv"), count(d_params, "Dense")) == (3, 1)
  assert (count(c_params, "Conv"), count(c_params, "Dense")) == (6, 1)


def test_unknown_architecture_is_rejected():
  with pytest.raises(ValueError, match="choose one of"):
    models.make_gan(gan_config("resnet"), 32, 3)


@pytest.mark.parametrize("size", [8, 7, 28])
def test_max_pool_2x2_matches_flax_max_pool(size):
  """Same values and (tie-free) gradients as nn.max_pool "SAME", odd sizes too."""
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  flax_pool = lambda x: nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
  np.testing.assert_array_equal(models.max_pool_2x2(x), flax_pool(x))
  w = jax.random.normal(jax.random.key(1), flax_pool(x).shape)
  grad = lambda pool: jax.grad(lambda x: jnp.sum(pool(x) * w))(x)
  np.testing.assert_array_equal(grad(models.max_pool_2x2), grad(flax_pool))


def test_max_pool_2x2_gradient_under_vmap_has_no_scatter():
  """Why it exists: vmapped nn.max_pool gradients scatter (slow on XLA:CPU)."""
  x = jnp.ones((3, 2, 8, 8, 4))
  loss = lambda x: jnp.sum(models.max_pool_2x2(x) ** 2)
  jaxpr = str(jax.make_jaxpr(jax.vmap(jax.grad(loss)))(x))
  assert "scatter" not in jaxpr and "select_and" not in jaxpr


@pytest.mark.parametrize("size", [8, 7])
def test_max_pool_2x2_gradient_at_ties_is_autodiffs(size):
  """The hand VJP gives what autodiff of the max gives: tied maxima share
  the gradient equally (also under vmap, and for odd sizes' padding)."""
  x = jax.random.randint(jax.random.key(0), (3, 2, size, size, 4), -2, 2
                         ).astype(jnp.float32)  # many ties
  def autodiff_pool(x):
    n, h, w, c = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)),
                constant_values=-jnp.inf)
    return x.reshape(n, -1, 2, x.shape[2] // 2, 2, c).max(axis=(2, 4))
  w = jax.random.normal(jax.random.key(1),
                        jax.vmap(autodiff_pool)(x).shape)
  def grad(pool):
    return jax.grad(lambda x: jnp.sum(jax.vmap(pool)(x) * w))(x)
  np.testing.assert_array_equal(jax.vmap(models.max_pool_2x2)(x),
                                jax.vmap(autodiff_pool)(x))
  np.testing.assert_allclose(grad(models.max_pool_2x2), grad(autodiff_pool),
                             rtol=1e-6)
  shares = jax.grad(lambda x: jnp.sum(jax.vmap(models.max_pool_2x2)(x)))(x)
  assert np.any((shares > 0) & (shares < 1))  # there were ties to share


def test_study_discriminator_pools_before_its_activation():
  """Pooling then leaky ReLU is the study's conv -> leaky ReLU -> pool."""
  _, d = models.make_gan(gan_config("study"), 32, 3)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  params = d.init(jax.random.key(1), x)["params"]
  h = x
  for i in range(3):
    conv = params[f"Conv_{i}"]
    h = lax.conv_general_dilated(h, conv["kernel"], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = nn.leaky_relu(h + conv["bias"], 0.2)
    h = nn.max_pool(h, (2, 2), (2, 2), padding="SAME")
  dense = params["Dense_0"]
  literal = (h.reshape(2, -1) @ dense["kernel"] + dense["bias"])[:, 0]
  np.testing.assert_allclose(d.apply({"params": params}, x), literal,
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [28, 32])
def test_study_generator_upsamples_before_its_convs(size, monkeypatch):
  """The folded upsampling gives the nets of upsample-then-conv layers."""
  g, _ = models.make_gan(gan_config("study"), size, 1)
  z = jax.random.normal(jax.random.key(0), (2, 100))
  g_vars = g.init(jax.random.key(1), z, train=False)
  fused = g.apply(g_vars, z, train=False)

  def literal(conv_fn=None):
    def conv(lhs, rhs, *args, **kwargs):
      up = jnp.repeat(jnp.repeat(lhs, 2, axis=1), 2, axis=2)
      return lax.conv_general_dilated(up, rhs, *args, **kwargs)
    return conv
  monkeypatch.setattr(matmul_conv, "upsampling", literal)
  np.testing.assert_allclose(fused, g.apply(g_vars, z, train=False),
                             atol=1e-5)
  assert fused.shape == (2, size, size, 1)
