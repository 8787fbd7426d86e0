"""The CPU path gives the plain vmap path's numbers; the chunk compiles once."""

import functools
import importlib

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny
from gansynth import config_schema
from gansynth import cpu
from gansynth.cpu import gan_axis
from gansynth.data import input_pipeline
from gansynth.gan import gan_train

K = 3


def tiny_config(architecture: str, strategy: str, conv: str = "lax"):
  """conftest.tiny's nets on K=3 in-memory classes (no data set is read)."""
  config = tiny(config_schema.default_config(), tfds_dir="")
  config.data.num_classes = K
  config.gan.update(architecture=architecture, batch_size=4,
                    strategy=strategy, conv=conv)
  return config


def tiny_data(config) -> input_pipeline.ClassData:
  images = np.random.default_rng(0).integers(0, 256, (K, 12, 8, 8, 1),
                                             dtype=np.uint8)
  return input_pipeline.ClassData(images=jnp.asarray(images),
                                  counts=jnp.array([12, 9, 5], jnp.int32))


def run_chunk(config, steps: int = 3):
  state = gan_train.create_state(config, jax.random.key(0))
  chunk = gan_train.make_train_chunk(config)
  return jax.device_get(chunk(state, tiny_data(config), steps))


@functools.cache
def vmap_run(architecture: str):
  config = tiny_config(architecture, "vmap")
  assert not cpu.selected(config)  # the plain path
  return run_chunk(config)


@pytest.mark.parametrize("layer", [
    nn.Conv(5, (3, 3)),
    nn.Conv(6, (5, 5), strides=(2, 2), padding="SAME"),
    nn.ConvTranspose(4, (5, 5), strides=(2, 2), padding="SAME"),
    nn.Conv(4, (3, 3), padding="VALID", kernel_dilation=2),
    nn.Conv(6, (3, 3), feature_group_count=3),
], ids=["same", "strided", "transposed", "dilated", "grouped"])
def test_conv_unrolled_matches_vmap(layer):
  """Forward and gradient convolutions of a K-stacked layer, vs jax.vmap."""
  x = jax.random.normal(jax.random.key(1), (K, 2, 9, 9, 3))
  params = jax.vmap(lambda k: layer.init(k, x[0]))(
      jax.random.split(jax.random.key(0), K))

  def grads(p, x):
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)))
    return jax.grad(loss, argnums=(0, 1))(p, x)

  want = jax.vmap(grads)(params, x)
  got = gan_axis.vmap_except_convs(grads, gan_axis.conv_unrolled,
                                   (True, True))(params, x)
  chex.assert_trees_all_close(got, want, atol=1e-4, rtol=1e-4)


# In the default run: the CPU path of tiny configs (conv_unroll:auto) on the
# study nets (pooling VJP), and vmap with matmul convs on both; the rest run
# in CI's slow step.
_FAST = {("conv_unroll", "auto", "study"), ("vmap", "matmul", "study"),
         ("vmap", "matmul", "dcgan")}


@pytest.mark.parametrize("strategy,conv,architecture", [
    pytest.param(strategy, conv, arch,
                 marks=() if (strategy, conv, arch) in _FAST else
                 pytest.mark.slow)
    for strategy, conv in [
        ("conv_unroll", "auto"), ("vmap", "matmul"), ("conv_unroll", "lax"),
        ("unroll", "lax"), ("unroll", "auto")]
    for arch in ("study", "dcgan")])
def test_cpu_path_matches_plain_vmap(strategy, conv, architecture):
  """Three train steps of every CPU strategy (and conv), vs the plain path
  (jax.vmap of gan_step, the models' own convolutions and pools).

  Round-off differs between the formulations and Adam's first steps
  (update ~ g / |g|) amplify it, hence 1e-4; a wrong gradient is off by O(1).
  """
  got = run_chunk(tiny_config(architecture, strategy, conv))
  chex.assert_trees_all_close(got, vmap_run(architecture), atol=1e-4,
                              rtol=1e-4)


def test_auto_resolves_per_backend():
  """Small GANs: conv_unroll on CPU, plain vmap elsewhere; names pass through."""
  want = "conv_unroll" if jax.default_backend() == "cpu" else "vmap"
  assert gan_axis.resolve("auto") == want
  for strategy in ("vmap", "unroll", "conv_unroll"):
    assert gan_axis.resolve(strategy, 1e12) == strategy
  with pytest.raises(ValueError, match="strategy"):
    gan_axis.resolve("pmap")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU rule")
def test_auto_on_cpu_unrolls_large_gans_only():
  """The measured split (module docstring): the 8x8 quickstart nets stay
  conv_unroll, the 28x28 and 32x32 ones are unrolled."""
  def resolved(name, **overrides):
    config = importlib.import_module(f"configs.{name}").get_config()
    for key, value in overrides.items():
      config.gan[key] = value
    return gan_axis.resolve("auto", cpu.step_work(config))
  assert resolved("quickstart") == "conv_unroll"
  assert resolved("mnist") == "unroll"
  assert resolved("mnist", g_width=32, d_width=32, batch_size=32) == "unroll"
  assert resolved("svhn") == "unroll"
  assert gan_axis.resolve("vmap", 1e12) == "vmap"


@pytest.mark.parametrize("strategy", [
    "auto", pytest.param("unroll", marks=pytest.mark.slow)])
def test_chunk_compiles_once_across_lengths(strategy):
  config = tiny_config("study", strategy)
  chunk = gan_train.make_train_chunk(config)
  state = gan_train.create_state(config, jax.random.key(0))
  data = tiny_data(config)
  for steps in (1, 3, 2):
    state, metrics = chunk(state, data, steps)
  assert chunk.step._cache_size() == 1  # pylint: disable=protected-access
  assert int(state.step) == 6
  assert metrics["d_loss"].shape == (K,)
  # The chunk hands back the stacked layout whatever its steps carry.
  chex.assert_trees_all_equal_shapes(
      state, gan_train.create_state(config, jax.random.key(0)))


def test_unroll_carries_the_gans_apart():
  """Under unroll the steps carry K separate GAN states (no [K, ...] stacks
  of parameters to slice and rebuild each step); split/join round-trip."""
  config = tiny_config("dcgan", "unroll")
  state = gan_train.create_state(config, jax.random.key(0))
  carried = gan_train.make_train_chunk(config).to_carried(state)
  assert isinstance(carried.gans, tuple) and len(carried.gans) == K
  chex.assert_trees_all_equal(gan_axis.join(carried.gans), state.gans)
  assert not cpu.holds_unstacked(tiny_config("dcgan", "conv_unroll"))
  with pytest.raises(ValueError, match="stacked"):
    gan_axis.map_over_gans(lambda *a: a, "vmap", unstacked=True)


@pytest.mark.parametrize("strategy", ["conv_unroll", "unroll"])
def test_sampler_matches_vmap(strategy):
  config = tiny_config("dcgan", "vmap")
  gans = gan_train.create_state(config, jax.random.key(0)).gans
  z = gan_train.fixed_noise(config, 5)
  want = gan_train.make_sampler(config)(gans, z)
  config.gan.strategy, config.gan.conv = strategy, "matmul"
  chex.assert_trees_all_close(gan_train.make_sampler(config)(gans, z), want,
                              atol=1e-5)
