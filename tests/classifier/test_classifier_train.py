"""The classifier recipe: epochs, warm-up + cosine schedule, random shifts
and mirroring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth.classifier import classifier_train
from gansynth.data import input_pipeline


def test_epochs_over_the_real_set_set_every_sources_steps(tiny_config):
  cfg = tiny_config.classifier
  assert classifier_train.num_steps(cfg, 1000) == cfg.train_steps
  cfg.epochs = 3
  cfg.batch_size = 64
  assert classifier_train.num_steps(cfg, 1000) == 47  # ceil(3000 / 64)
  assert classifier_train.num_steps(cfg, 10) == 1


def test_cosine_schedule_warms_up_then_decays_to_zero(tiny_config):
  cfg = tiny_config.classifier
  cfg.schedule = "cosine"
  cfg.warmup_fraction = 0.1
  lr = classifier_train.learning_rate(cfg, 100)
  assert float(lr(0)) == 0.0
  assert float(lr(10)) == pytest.approx(cfg.learning_rate)
  assert float(lr(5)) == pytest.approx(cfg.learning_rate / 2)
  assert float(lr(55)) == pytest.approx(cfg.learning_rate / 2, rel=1e-3)
  assert float(lr(100)) == pytest.approx(0.0, abs=1e-9)
  cfg.schedule = "constant"
  assert float(classifier_train.learning_rate(cfg, 100)(99)) == (
      cfg.learning_rate)


@pytest.mark.slow  # 15-40 s of training; CI's second step
def test_recipe_learns_real_digits_and_is_stored_apart(tiny_config,
                                                       tmp_path):
  """Shifted, cosine-scheduled training learns the digits; a classifier
  stored under another recipe is not reused for this one."""
  config = tiny_config
  config.classifier.width = 8
  config.classifier.batch_size = 32
  config.classifier.learning_rate = 3e-3
  config.classifier.epochs = 8
  config.classifier.schedule = "cosine"
  config.classifier.shift = 1
  images, labels = input_pipeline.load_split(config.data, "train")
  test_images, test_labels = input_pipeline.load_split(config.data, "test")
  state = classifier_train.train(config, str(tmp_path), "real", images,
                                 labels, seed=0)
  assert classifier_train.real_train_size(config.data) == len(labels)
  assert int(state.step) == classifier_train.num_steps(config.classifier,
                                                       len(labels))
  # A synthetic source of another size trains for the same steps.
  half = classifier_train.train(config, str(tmp_path), "gan", images[::2],
                                labels[::2], seed=0)
  assert int(half.step) == int(state.step)
  accuracy = np.mean(classifier_train.predict(config, state.params,
                                              test_images) == test_labels)
  assert accuracy > 0.6  # chance is 0.1
  config.classifier.shift = 0
  other = classifier_train.train(config, str(tmp_path), "real", images,
                                 labels, seed=0)
  assert len(list((tmp_path / "checkpoints" / "classifier").iterdir())) == 3
  assert not np.array_equal(
      np.asarray(state.params["Dense_0"]["kernel"]),
      np.asarray(other.params["Dense_0"]["kernel"]))


def _one_step(config, images, labels):
  """The dense kernel and metrics after one step from a fixed init."""
  state = classifier_train.create_state(config, jax.random.key(0))
  state, metrics = classifier_train.make_train_chunk(config)(
      state, jnp.asarray(images), jnp.asarray(labels), 1)
  return np.asarray(state.params["Dense_0"]["kernel"]), metrics


def test_flip_changes_the_step_and_the_stored_recipe(tiny_config):
  """Mirroring changes what a step trains on, so a classifier stored without
  it is not reused; with it off the recipe text is what it always was."""
  config = tiny_config
  images, labels = input_pipeline.load_split(config.data, "train")
  cfg = config.classifier
  cfg.shift = 1
  plain = classifier_train.recipe_text(cfg, 100)
  assert "flip" not in plain
  cfg.flip = True
  assert classifier_train.recipe_text(cfg, 100) != plain

  def one_step(flip):
    config.classifier.flip = flip
    return _one_step(config, images, labels)[0]

  assert not np.array_equal(one_step(True), one_step(False))


def test_label_smoothing_changes_the_step_and_the_stored_recipe(tiny_config):
  """Smoothed targets train differently and are stored apart; at 0 the
  recipe text and the step are those of plain cross-entropy."""
  config = tiny_config
  images, labels = input_pipeline.load_split(config.data, "train")
  cfg = config.classifier
  cfg.shift = 1
  plain = classifier_train.recipe_text(cfg, 100)
  assert "label_smoothing" not in plain
  cfg.label_smoothing = 0.1
  assert classifier_train.recipe_text(cfg, 100) != plain
  cfg.shift = 0
  assert classifier_train.recipe_text(cfg, 100) != ""

  def one_step(smoothing):
    config.classifier.label_smoothing = smoothing
    return _one_step(config, images, labels)

  (plain_kernel, plain_metrics), (smooth_kernel, smooth_metrics) = (
      one_step(0.0), one_step(0.2))
  assert not np.array_equal(plain_kernel, smooth_kernel)
  # An untrained classifier is near uniform, so smoothing moves the targets
  # towards its prediction: the loss is lower, never NaN.
  assert np.all(np.isfinite(np.asarray(smooth_metrics["loss"])))
  assert (np.asarray(smooth_metrics["loss"]).mean()
          < np.asarray(plain_metrics["loss"]).mean())
