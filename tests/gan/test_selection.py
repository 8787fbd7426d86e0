"""Choosing the GAN checkpoint to synthesize from by validation CAS."""

import json

import pytest

from gansynth import config_schema
from gansynth import paths
from gansynth import pipeline
from gansynth.data import sources
from gansynth.gan import selection


def selecting(config):
  config.gan.ema_decay = 0.5
  config.synthesis.update(select=True, select_split="train[:50%]",
                          select_per_class=10, select_steps=4)
  config.stages = "train_gan,synthesize"
  config.classifier.sources = "real,gan"
  return config


@pytest.mark.slow  # a tiny run and a classifier per step
def test_every_stored_step_is_scored_and_synthesis_uses_the_best(
    tiny_config, tmp_path, monkeypatch):
  config = selecting(tiny_config)
  workdir = str(tmp_path)
  scored = []
  real = selection.validation_accuracy

  def recorded(cfg, images, labels, val):
    scored.append(cfg.synthesis.use_ema)
    accuracy = real(cfg, images, labels, val)
    assert 0 <= accuracy <= 1
    # The raw generator of step 4 is made the best one.
    return 2.0 if (len(scored), cfg.synthesis.use_ema) == (4, False) else accuracy

  monkeypatch.setattr(selection, "validation_accuracy", recorded)
  pipeline.run(config, workdir)
  with open(paths.selection_scores(workdir)) as f:
    report = json.load(f)
  # Steps 2, 4, 6 (checkpoint_every=2), each with and without EMA.
  assert [(c["step"], c["ema"]) for c in report["candidates"]] == [
      (2, True), (2, False), (4, True), (4, False), (6, True), (6, False)]
  assert scored == [True, False] * 3
  assert report["best"] == {"step": 4, "ema": False}
  stamp = sources.read_stamp(workdir, "gan")
  assert (stamp["gan_step"], stamp["ema"]) == (4, False)

  # A rerun reads the scores back instead of training six classifiers again.
  monkeypatch.setattr(selection, "validation_accuracy",
                      lambda *a: pytest.fail("scored again"))
  assert selection.choose(config, workdir) == {"step": 4, "ema": False}


@pytest.mark.parametrize("split, message", [
    ("", "give a validation slice"),
    ("test", "must not be the test split"),
    ("test[:100]", "must not be the test split"),
])
def test_selection_needs_a_validation_slice_that_is_not_the_test_split(
    tiny_config, split, message):
  config = selecting(tiny_config)
  config.synthesis.select_split = split
  with pytest.raises(config_schema.ConfigError, match=message):
    config_schema.validate(config)


def test_the_test_split_is_refused_even_when_carved_from_train(tiny_config):
  config = selecting(tiny_config)
  config.data.test_split = "train[90%:]"
  config.synthesis.select_split = "train[90%:]"
  with pytest.raises(config_schema.ConfigError, match="test split"):
    config_schema.validate(config)
