"""Tests of the procedural digit renderer."""

import os

import matplotlib
import numpy as np
from PIL import Image
import pytest

from gansynth import config_schema
from gansynth.runtime import image_grid
from gansynth.sim import procedural


def _quiet(config):
  """The config with every nuisance off: just a digit on a plain ground."""
  config.neighbours.prob = 0.0
  config.distractors.count = (0, 0)
  config.noise_sigma = (0.0, 0.0)
  config.blur_radius = (0.0, 0.0)
  config.jpeg_prob = 0.0
  config.colors.gradient_prob = 0.0
  config.colors.digit_gradient_prob = 0.0
  config.colors.shadow_prob = 0.0
  return config


def _nearest_centroid_accuracy(preset, config=None):
  """Trains on one seed, tests on another; features ignore digit polarity."""
  config = config or config_schema.render_config(preset)
  shape = config.image_shape

  def features(images):
    gray = images.astype(np.float32).mean(-1).reshape(len(images), -1)
    ink = np.abs(gray - np.median(gray, axis=1, keepdims=True))
    return ink / (np.linalg.norm(ink, axis=1, keepdims=True) + 1e-6)

  x_train, y_train = procedural.render_dataset(30, shape, config, 0, 1)
  x_test, y_test = procedural.render_dataset(20, shape, config, 1, 1)
  f_train = features(x_train)
  centroids = np.stack([f_train[y_train == k].mean(0) for k in range(10)])
  predicted = (features(x_test) @ centroids.T).argmax(1)
  return (predicted == y_test).mean()


@pytest.mark.parametrize("preset,shape", [("svhn", (32, 32, 3)),
                                          ("mnist", (28, 28, 1)),
                                          ("digits", (8, 8, 1))])
def test_render_dataset_shapes_and_labels(preset, shape):
  config = config_schema.render_config(preset)
  assert tuple(config.image_shape) == shape
  images, labels = procedural.render_dataset(3, shape, config, seed=0,
                                             num_workers=1)
  assert images.shape == (30,) + shape
  assert images.dtype == np.uint8
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(labels, np.arange(30) % 10)
  # Every image has a visible digit, not a flat colour.
  assert (images.reshape(30, -1).std(axis=1) > 10).all()


def test_render_dataset_fewer_classes_and_other_shape():
  config = config_schema.render_config("svhn")
  images, labels = procedural.render_dataset(2, (48, 40, 1), config, 0, 1,
                                             num_classes=3)
  assert images.shape == (6, 48, 40, 1)
  np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2])


def test_render_single_image_and_bad_label():
  config = config_schema.render_config("svhn")
  image = procedural.render(7, np.random.default_rng(0), (32, 32, 3), config)
  assert image.shape == (32, 32, 3) and image.dtype == np.uint8
  with pytest.raises(ValueError, match="digit"):
    procedural.render(10, np.random.default_rng(0), (32, 32, 3), config)
  with pytest.raises(ValueError, match="preset"):
    config_schema.render_config("cifar")


def test_mnist_preset_is_white_on_black_and_centred():
  config = config_schema.render_config("mnist")
  images, _ = procedural.render_dataset(2, (28, 28, 1), config, 0, 1)
  ink = images[..., 0].astype(np.float64)
  # Black border (the digit fits a 20x20 box) and saturated white strokes.
  assert ink[:, :2].max() == 0 and ink[:, -2:].max() == 0
  assert (ink.reshape(len(ink), -1).max(axis=1) > 200).all()
  ys, xs = np.mgrid[0:28, 0:28]
  mass = ink.sum(axis=(1, 2))
  com_y = (ink * ys).sum(axis=(1, 2)) / mass
  com_x = (ink * xs).sum(axis=(1, 2)) / mass
  np.testing.assert_allclose(com_y, 13.5, atol=1.0)
  np.testing.assert_allclose(com_x, 13.5, atol=1.0)


def test_same_output_for_any_worker_count(monkeypatch):
  monkeypatch.setattr(procedural, "_CHUNK_SIZE", 7)  # Several chunks.
  config = config_schema.render_config("svhn")
  serial = procedural.render_dataset(3, (32, 32, 3), config, 5, num_workers=1)
  parallel = procedural.render_dataset(3, (32, 32, 3), config, 5,
                                       num_workers=2)
  np.testing.assert_array_equal(serial[0], parallel[0])
  np.testing.assert_array_equal(serial[1], parallel[1])
  # Image i depends on (seed, i) only, not on how many images are made.
  prefix, _ = procedural.render_dataset(1, (32, 32, 3), config, 5, 1)
  np.testing.assert_array_equal(prefix, serial[0][:10])
  other, _ = procedural.render_dataset(3, (32, 32, 3), config, 6, 1)
  assert not np.array_equal(other, serial[0])


def test_digit_contrasts_with_background():
  """With nuisances off, every class shows digit and ground pixels apart."""
  config = _quiet(config_schema.render_config("svhn"))
  images, labels = procedural.render_dataset(10, (32, 32, 3), config, 0, 1)
  luminance = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114])
  flat = luminance.reshape(len(images), -1)
  spread = flat.max(axis=1) - flat.min(axis=1)
  margin = 255 * config.colors.min_contrast
  for k in range(10):
    assert spread[labels == k].min() >= 0.9 * margin, k
  # In white on black, the digit covers a fair part of the image near its
  # centre, and not most of it.
  config.colors.fixed = True
  images, _ = procedural.render_dataset(10, (32, 32, 3), config, 0, 1)
  ink = images.mean(axis=-1) > 127
  coverage = ink.mean(axis=(1, 2))
  assert 0.03 < coverage.min() and coverage.max() < 0.7
  ys, xs = np.nonzero(ink.any(axis=0))
  assert abs(ys.mean() - 15.5) < 3 and abs(xs.mean() - 15.5) < 3


def test_classes_are_separable_by_nearest_centroid():
  assert _nearest_centroid_accuracy("mnist") > 0.5
  svhn = config_schema.render_config("svhn")
  svhn.neighbours.prob = 0.0
  svhn.distractors.count = (0, 0)
  assert _nearest_centroid_accuracy("svhn", svhn) > 0.3  # Chance is 0.1.


def test_matplotlib_fonts_alone_suffice():
  config = config_schema.render_config("svhn")
  config.fonts = (os.path.join(matplotlib.get_data_path(), "fonts", "ttf"),)
  fonts = procedural.find_fonts(config)
  assert fonts and all("matplotlib" in f for f in fonts)
  assert not any("cmex" in f or "LastResort" in f for f in fonts)
  images, _ = procedural.render_dataset(1, (32, 32, 3), config, 0, 1)
  assert images.shape == (10, 32, 32, 3)


def test_default_fonts_are_the_bundled_ones_and_are_recorded():
  config = config_schema.render_config("mnist")
  fonts = procedural.find_fonts(config)
  bundled = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
  assert fonts and all(os.path.dirname(f) == os.path.realpath(bundled)
                       for f in fonts)
  record = procedural.font_record(config)
  assert [r["name"] for r in record] == [os.path.basename(f) for f in fonts]
  assert "DejaVuSans.ttf" in [r["name"] for r in record]
  assert all(len(r["sha256"]) == 64 for r in record)
  config.fonts = ("system",)  # the machine's fonts too
  names = lambda paths: {os.path.basename(p) for p in paths}
  assert names(fonts) <= names(procedural.find_fonts(config))


def test_no_font_error_says_what_to_do(tmp_path):
  config = config_schema.render_config("svhn")
  config.fonts = (str(tmp_path),)
  with pytest.raises(procedural.NoFontError,
                     match="fonts-dejavu-core.*config.fonts") as error:
    procedural.render_dataset(1, (32, 32, 3), config, 0, 1)
  assert isinstance(error.value, ValueError)
  assert str(tmp_path) in str(error.value)


def test_write_procedural_dataset_round_trips(tmp_path):
  from gansynth.data import image_datasets  # pylint: disable=g-import-not-at-top
  config = config_schema.render_config("mnist")
  directory = procedural.write_procedural_dataset(
      str(tmp_path), "procedural_mnist", 2, (28, 28, 1), config, seed=3,
      num_workers=1)
  images, labels = image_datasets.load_written(directory, "train")
  expected, expected_labels = procedural.render_dataset(
      2, (28, 28, 1), config, 3, 1)
  np.testing.assert_array_equal(images, expected)
  np.testing.assert_array_equal(labels, expected_labels)


def test_rendered_set_as_a_per_class_grid(tmp_path):
  config = config_schema.render_config("svhn")
  images, labels = procedural.render_dataset(4, (32, 32, 3), config, 0, 1)
  path = image_grid.save_grid(str(tmp_path / "grid.png"),
                              image_grid.per_class_grid(images, labels, 10, 4))
  grid = np.asarray(Image.open(path))
  assert grid.shape == (10 * 33 + 1, 4 * 33 + 1, 3)
  np.testing.assert_array_equal(grid[1 + 33 * 3:1 + 33 * 3 + 32, 1:33],
                                images[labels == 3][0])


@pytest.mark.parametrize("shape", [(8, 8, 1), (16, 16, 1), (32, 32, 3)])
def test_mnist_preset_renders_at_other_sizes(shape):
  """The MNIST box is a fraction of the side, so any size works."""
  images, labels = procedural.render_dataset(
      2, shape, config_schema.render_config("mnist"), seed=0, num_workers=1)
  assert images.shape == (20,) + shape and images.max() > 100
  assert labels.tolist() == list(range(10)) * 2


def test_digits_preset_fills_the_8x8_frame_like_the_real_digits():
  """scikit-learn's digits span all 8 rows with ~19 of 64 pixels of ink;
  the preset's renders must too (not 6-pixel faint blobs), and image i must
  depend on (seed, i) only."""
  config = config_schema.render_config("digits")
  images, _ = procedural.render_dataset(10, (8, 8, 1), config, 0, 1)
  ink = images[..., 0].astype(np.float64) / 255
  rows = (ink > 0.2).any(axis=2).sum(axis=1)
  assert np.median(rows) == 8
  assert 14 < np.median(ink.sum(axis=(1, 2))) < 25
  again, _ = procedural.render_dataset(10, (8, 8, 1), config, 0, 2)
  np.testing.assert_array_equal(images, again)


def test_procedural_source_runs_without_a_gan(tiny_config, tmp_path):
  """synthesize,classify with sources real,procedural needs no trained GAN
  (how the renderer is tuned on a validation slice, docs/refiner.md)."""
  import json  # pylint: disable=g-import-not-at-top
  from gansynth import pipeline  # pylint: disable=g-import-not-at-top
  config = tiny_config
  config.stages = "synthesize,classify"
  config.classifier.sources = "real,procedural"
  pipeline.run(config, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert sorted(results["sources"]) == ["procedural", "real"]
  assert not (tmp_path / "synthetic" / "gan").exists()
