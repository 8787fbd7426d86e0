"""ops.lowered: the plain models' numbers (values and gradients), in the CPU
forms of their convolutions and max-pools."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth import models
from gansynth.cpu import matmul_conv
from gansynth.cpu import ops


def gan_config(arch, **overrides):
  config = config_schema.default_config().gan
  config.update(architecture=arch, g_width=4, d_width=4, **overrides)
  return config


def flax_pool(x):
  return nn.max_pool(x, (2, 2), (2, 2), padding="SAME")


def lax_padding(size):
  return ((0, 0), (0, size % 2), (0, size % 2), (0, 0))


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_2x2_is_flax_max_pool(size, ties):
  """Same values and gradients as nn.max_pool, also at ties (all of a
  window's gradient to its first maximum) and for odd sizes."""
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  if ties:
    x = jnp.round(x)  # many ties
  pool = lambda x: ops.max_pool_2x2(x, lax_padding(size))
  np.testing.assert_array_equal(pool(x), flax_pool(x))
  w = jax.random.normal(jax.random.key(1), flax_pool(x).shape)
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * w))(x)
  np.testing.assert_array_equal(grad(pool), grad(flax_pool))


def test_max_pool_2x2_gradient_under_vmap_has_no_scatter():
  """Why it exists: vmapped nn.max_pool gradients scatter (slow on XLA:CPU)."""
  x = jnp.ones((3, 2, 8, 8, 4))
  loss = lambda x: jnp.sum(ops.max_pool_2x2(x) ** 2)
  jaxpr = str(jax.make_jaxpr(jax.vmap(jax.grad(loss)))(x))
  assert "scatter" not in jaxpr and "select_and" not in jaxpr


def train_grads(apply, variables, x, labels=None):
  """Output, batch-stat updates and parameter gradients of one train call."""
  def loss(params):
    out, upd = apply({**variables, "params": params}, x, labels, train=True,
                     mutable=["batch_stats"])
    return jnp.sum(jnp.sin(out)), (out, upd)
  return jax.jit(jax.grad(loss, has_aux=True))(variables["params"])


def assert_close_at_scale(got, want, tol=1e-4):
  """Each leaf equal to 0.01% of that leaf's largest value: a sum of many
  products, reassociated (convolution as matmul), moves by rounding in
  proportion to its scale, not to each element."""
  def check(g, w):
    np.testing.assert_allclose(g, w, rtol=tol,
                               atol=tol * float(np.max(np.abs(w))))
  jax.tree.map(check, got, want)


NETS = [("dcgan", 16, 3, {}), ("dcgan", 28, 1, {"spectral_norm": True}),
        ("study", 8, 1, {"mbstd": True}), ("study", 28, 1, {})]
FAST = {("matmul", "dcgan", 28), ("matmul", "study", 8)}  # the rest: slow


@pytest.mark.parametrize("conv,arch,size,channels,options", [
    pytest.param(conv, *net, marks=() if (conv, *net[:2]) in FAST
                 else pytest.mark.slow)
    for conv in matmul_conv.CONVS for net in NETS])
def test_lowered_nets_give_the_plain_nets_numbers(conv, arch, size, channels,
                                                  options):
  g, d = models.make_gan(gan_config(arch, **options), size, channels)
  z = jax.random.normal(jax.random.key(0), (4, 100))
  g_vars = g.init(jax.random.key(1), z, train=False)
  images = g.apply(g_vars, z, train=False)
  d_vars = d.init(jax.random.key(2), images, train=False)
  for net, variables, x in ((g, g_vars, z), (d, d_vars, images)):
    want = train_grads(net.apply, variables, x)
    got = train_grads(ops.lowered(net.apply, conv), variables, x)
    assert_close_at_scale(got, want)


@pytest.mark.slow  # long compile; CI's second step
def test_lowered_nets_take_labels():
  config = gan_config("study", spectral_norm=True)
  g, d = models.make_gan(config, 8, 1, num_classes=3)
  # Distinct z: with equal rows batch norm has zero variance and its
  # gradient is rounding error divided by sqrt(eps).
  z = jax.random.normal(jax.random.key(0), (3, 100))
  y = jnp.arange(3)
  g_vars = g.init(jax.random.key(1), z, y, train=False)
  want = train_grads(g.apply, g_vars, z, y)
  assert_close_at_scale(
      train_grads(ops.lowered(g.apply, "matmul"), g_vars, z, y), want)
