"""Model shapes and value ranges at every supported resolution, and the
study nets against their layers written out with lax."""

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth import models


def gan_config(arch, dtype="float32"):
  config = config_schema.default_config().gan
  config.update(architecture=arch, g_width=4, d_width=4, dtype=dtype)
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


def test_study_discriminator_is_conv_leaky_relu_pool():
  """The study's D written out with lax: 3 x (conv, leaky ReLU, pool)."""
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
def test_study_generator_upsamples_before_its_convs(size):
  """The study's G written out with lax: dense, then 3 x (nearest 2x
  upsampling where the size allows, 3x3 conv), in inference mode."""
  g, _ = models.make_gan(gan_config("study"), size, 1)
  z = jax.random.normal(jax.random.key(0), (2, 100))
  g_vars = g.init(jax.random.key(1), z, train=False)
  p, s = g_vars["params"], g_vars["batch_stats"]

  def bn(x, name):
    st, pr = s[name], p[name]
    return ((x - st["mean"]) / jnp.sqrt(st["var"] + 1e-5) * pr["scale"]
            + pr["bias"])
  n_up = models.num_doublings(size, 3)
  base = size // 2 ** n_up
  h = (z @ p["Dense_0"]["kernel"]).reshape(2, base, base, 16)
  h = nn.relu(bn(h, "BatchNorm_0"))
  for i in range(3):
    if i < n_up:
      h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
    h = lax.conv_general_dilated(h, p[f"Conv_{i}"]["kernel"], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = nn.relu(bn(h, f"BatchNorm_{i + 1}")) if i < 2 else jnp.tanh(
        h + p["Conv_2"]["bias"])
  np.testing.assert_allclose(g.apply(g_vars, z, train=False), h, atol=1e-5)
  assert h.shape == (2, size, size, 1)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  z = jax.random.normal(jax.random.key(0), (4, 100))
  g, d = models.make_gan(gan_config("dcgan", dtype="bfloat16"), 16, 3)
  g_vars = g.init(jax.random.key(1), z, train=False)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(g_vars))
  images = g.apply(g_vars, z, train=False)
  d_vars = d.init(jax.random.key(2), images, train=False)
  logits = d.apply(d_vars, images, train=False)
  assert images.dtype == logits.dtype == jnp.float32
  g32, d32 = models.make_gan(gan_config("dcgan"), 16, 3)
  want = d32.apply(d_vars, g32.apply(g_vars, z, train=False), train=False)
  assert np.all(np.isfinite(logits))
  np.testing.assert_allclose(logits, want, atol=0.1, rtol=0.1)
