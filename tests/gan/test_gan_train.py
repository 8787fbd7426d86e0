"""The K-GAN train step: equal to K separate steps, independent, learning."""

import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import cpu
from gansynth.data import input_pipeline
from gansynth.gan import gan_train


def small_problem(config, k=3, n=12, seed=0):
  """K classes of random uint8 8x8 images, unequal class sizes."""
  config.data.num_classes = k
  rng = np.random.default_rng(seed)
  labels = np.concatenate([np.full(n + 3 * c, c) for c in range(k)])
  images = rng.integers(0, 256, (len(labels), 8, 8, 1), dtype=np.uint8)
  return input_pipeline.group_by_class(images, labels, k)


def single_step(config):
  """One GAN's step, unmapped, with the layers the K-GAN step uses (the
  CPU path's forms where it is selected; tests/cpu compares those with the
  models' own)."""
  nets = gan_train.make_nets(config)
  if cpu.selected(config):
    nets = cpu.lowered_nets(nets, config)
  return jax.jit(functools.partial(gan_train.gan_step, nets=nets,
                                   **gan_train.step_options(config.gan)))


def take(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def assert_k_step_equals_separate_steps(config, k, tol):
  """The jitted K-GAN step of `config` on K small classes equals one GAN's
  step applied to each; returns the K stepped GANs."""
  data = small_problem(config, k=k)
  state = gan_train.create_state(config, jax.random.key(0))
  step = jnp.int32(5)
  gans, metrics = jax.jit(gan_train.make_step(config))(
      state.gans, data.images, data.counts, step)
  one = single_step(config)
  for i in range(k):
    gan_i, metrics_i = one(take(state.gans, i), data.images[i],
                           data.counts[i], step)
    chex.assert_trees_all_close(take(gans, i), gan_i, atol=tol, rtol=tol)
    chex.assert_trees_all_close(take(metrics, i), metrics_i, atol=tol)
  return gans


@pytest.mark.parametrize("arch", [
    pytest.param("study", marks=pytest.mark.slow), "dcgan"])
def test_k_gan_step_equals_separate_steps(tiny_config, arch):
  tiny_config.gan.architecture = arch
  assert_k_step_equals_separate_steps(tiny_config, k=3, tol=1e-5)


@pytest.mark.slow  # a long compile; CI's second step
@pytest.mark.parametrize("arch", ["study", "dcgan"])
def test_reused_fake_updates_g_as_a_second_forward_would(tiny_config, arch,
                                                         monkeypatch):
  """reuse_fake backpropagates G's loss through the fake batch D's update
  saw: with one noise for both updates it must equal running G again; with
  the usual two noises the flag must matter."""
  config = tiny_config
  config.gan.architecture = arch
  data = small_problem(config)
  gan = take(gan_train.create_state(config, jax.random.key(0)).gans, 0)
  args = (gan, data.images[0], data.counts[0], jnp.int32(3))

  def run_both():
    outs = []
    for reuse in (True, False):
      config.gan.reuse_fake = reuse
      outs.append(single_step(config)(*args))
    return outs

  def one_noise(key, step, batch_size, latent_dim):
    z = jax.random.normal(jax.random.fold_in(key, step),
                          (batch_size, latent_dim))
    return z, z

  with monkeypatch.context() as patch:
    patch.setattr(gan_train, "step_noise", one_noise)
    reused, rerun = run_both()
  chex.assert_trees_all_close(reused, rerun, atol=1e-5, rtol=1e-5)
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                       reused[0].g_params, gan.g_params)
  assert max(jax.tree.leaves(moved)) > 1e-5  # G was updated at all
  reused, fresh = run_both()
  chex.assert_trees_all_equal(reused[0].d_params, fresh[0].d_params)
  assert not np.allclose(reused[1]["g_loss"], fresh[1]["g_loss"])


def test_gans_are_independent(tiny_config):
  """Changing class 1's images changes GAN 1 and leaves GAN 2 untouched."""
  config = tiny_config
  data = small_problem(config)
  state = gan_train.create_state(config, jax.random.key(0))
  run = jax.jit(gan_train.make_step(config))
  before, _ = run(state.gans, data.images, data.counts, jnp.int32(0))
  changed = data.images.copy()
  changed[1] = 255 - changed[1]
  after, _ = run(state.gans, changed, data.counts, jnp.int32(0))
  chex.assert_trees_all_equal(take(before, 2), take(after, 2))
  chex.assert_trees_all_equal(take(before, 0), take(after, 0))
  diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                      take(before, 1).d_params, take(after, 1).d_params)
  assert max(jax.tree.leaves(diff)) > 0


def test_chunks_equal_single_steps(tiny_config):
  """A fori_loop chunk of n steps is exactly n calls of the step."""
  config = tiny_config
  data = small_problem(config)
  state = gan_train.create_state(config, jax.random.key(0))
  step_fn = jax.jit(gan_train.make_step(config))
  gans = state.gans
  for s in range(3):
    gans, _ = step_fn(gans, data.images, data.counts, jnp.int32(s))
  chunk = gan_train.make_train_chunk(config)
  chunked, _ = chunk(state, data, 3)
  assert int(chunked.step) == 3
  chex.assert_trees_all_close(chunked.gans, gans, atol=1e-6)


def test_losses_move_as_a_gans_should_on_real_digits(tiny_config, tmp_path):
  """On real digits, D learns to tell real from fake: its loss falls below
  the chance value 2 log 2 while G's rises; nothing is NaN."""
  config = tiny_config
  config.gan.g_width = 8
  config.gan.d_width = 8
  config.gan.learning_rate = 1e-3
  config.gan.train_steps = 30
  config.gan.log_every = 5
  config.gan.checkpoint_every = 30
  gan_train.train(config, str(tmp_path))
  with open(tmp_path / "gan_metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  first, last = rows[0], rows[-1]
  assert last["step"] == 30
  for row in rows:
    for name in gan_train.METRICS:
      assert np.all(np.isfinite(row[name])), (row["step"], name)
  assert np.mean(first["d_loss"]) == pytest.approx(2 * np.log(2), abs=0.25)
  assert np.mean(last["d_loss"]) < np.mean(first["d_loss"]) - 0.1
  assert np.mean(last["g_loss"]) > np.mean(first["g_loss"])
  assert np.mean(last["d_real"]) > np.mean(last["d_fake"])
  assert os.path.exists(tmp_path / "samples" / "gan_step000030.png")


def test_nonfinite_gans_are_found_in_metrics_and_parameters():
  metrics = {"d_loss": np.array([0.5, np.nan, 0.7, 0.1]),
             "g_loss": np.array([0.5, 0.6, np.inf, 0.1])}
  assert gan_train.nonfinite_gans(metrics, [True, True, True, False]) == [
      1, 2, 3]
