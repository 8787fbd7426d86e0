"""Bad input stops early with one clear message: the table of cases."""

import os

import pytest

from gansynth import pipeline
from gansynth.config_schema import ConfigError
from gansynth.data.image_datasets import DatasetError
from gansynth.gan import gan_train
from gansynth.runtime.store import CheckpointError


def set_field(path, value):
  def mutate(config, tmp_path):
    del tmp_path
    section, name = path.split(".")
    config[section][name] = value
  return mutate


def unwritable_workdir(config, tmp_path):
  del config
  (tmp_path / "a_file").write_text("not a directory")
  return str(tmp_path / "a_file" / "run")


def stages(value):
  def mutate(config, tmp_path):
    del tmp_path
    config.stages = value
  return mutate


def offline_mnist(config, tmp_path):
  config.data.name = "mnist"
  config.data.data_dir = str(tmp_path / "empty")


def missing_class(config, tmp_path):
  del tmp_path
  config.data.num_classes = 11  # the digits have no class 10


CASES = [
    # (case, change, error, words the message must contain)
    ("negative batch size", set_field("gan.batch_size", -1), ConfigError,
     "config.gan.batch_size=-1: must be a positive integer"),
    ("image size no model builds", set_field("data.image_size", 30),
     ConfigError, "a multiple of 4 from 8 to 256"),
    ("odd channel count", set_field("data.channels", 2), ConfigError,
     "config.data.channels=2: choose one of (1, 3)"),
    ("unknown loss", set_field("gan.loss", "wgan"), ConfigError,
     "choose one of ('bce', 'l1', 'hinge')"),
    ("the study loss's old name", set_field("gan.loss", "study"), ConfigError,
     "now called 'l1'"),
    ("unknown stage", stages("train_gan,train_cls"), ConfigError,
     "config.stages='train_gan,train_cls'"),
    ("label smoothing of 1", set_field("classifier.label_smoothing", 1.0),
     ConfigError, "config.classifier.label_smoothing=1.0: must be in [0, 1)"),
    ("keep no samples", set_field("synthesis.keep_fraction", 0.0),
     ConfigError, "config.synthesis.keep_fraction=0.0: must be in (0, 1]"),
    ("latents of std 0", set_field("synthesis.temperature", 0.0),
     ConfigError, "config.synthesis.temperature=0.0: must be positive"),
    ("unknown source", set_field("classifier.sources", "real,vae"),
     ConfigError, "config.classifier.sources='real,vae'"),
    ("prepare without files", stages("prepare"), ConfigError,
     "needs --config.data.source_dir"),
    ("workdir not writable", unwritable_workdir, ConfigError,
     "is not writable"),
    ("data set not prepared offline", offline_mnist, DatasetError,
     "train-images-idx3-ubyte"),
    ("data set with a missing class", missing_class, DatasetError,
     "no images of class(es) [10]"),
    ("batch larger than a class", set_field("gan.batch_size", 1000),
     DatasetError, "larger than the smallest class"),
    ("synthesize before training", stages("synthesize"), CheckpointError,
     "run the train_gan stage first"),
    ("classify on GAN images never made", stages("classify"), DatasetError,
     "run the stage that writes it first"),
]


@pytest.mark.parametrize("change,error,message",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_stops_early_with_a_clear_message(
    tiny_config, tmp_path, monkeypatch, change, error, message):
  def no_training(*args, **kwargs):
    raise AssertionError("training started despite bad input")
  monkeypatch.setattr(gan_train, "make_train_chunk", no_training)
  workdir = change(tiny_config, tmp_path) or str(tmp_path / "run")
  with pytest.raises(error) as info:
    pipeline.run(tiny_config, workdir)
  assert message in str(info.value)


@pytest.mark.parametrize("field,value", [("gan.g_width", 8),
                                         ("gan.conditioning", "unconditional"),
                                         ("gan.conditioning", "conditional")])
def test_checkpoint_of_an_incompatible_config_is_refused(
    tiny_config, tmp_path, field, value):
  tiny_config.gan.train_steps = 2
  tiny_config.stages = "train_gan"
  pipeline.run(tiny_config, str(tmp_path))
  section, name = field.split(".")
  tiny_config[section][name] = value
  with pytest.raises(CheckpointError, match="was made with another config"):
    pipeline.run(tiny_config, str(tmp_path))
  assert os.listdir(os.path.join(tmp_path, "checkpoints", "gan")) == ["2"]
