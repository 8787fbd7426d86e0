"""Imports of the real MNIST and Fashion-MNIST files (run with -m integration).

MNIST's training split lives in the shared data folder next to the repo
(``../shared/data/mnist``; set GANSYNTH_SHARED_DATA to the folder holding
``mnist/`` to use another place). Fashion-MNIST comes from Debian's package
``dataset-fashion-mnist``.
"""

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gansynth.data import data_import

SHARED_DATA = Path(os.environ.get(
    "GANSYNTH_SHARED_DATA", Path(__file__).parents[2].parent / "shared/data"))
MNIST_DIR = SHARED_DATA / "mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

pytestmark = pytest.mark.slow


def _labels(name, data_dir, split):
  ds = tfds.load(name, data_dir=data_dir, split=split, download=False,
                 batch_size=-1)
  return tfds.as_numpy(ds)["label"]


def test_real_mnist_train_split(tmp_path, caplog):
  if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"no MNIST files in {MNIST_DIR} (set GANSYNTH_SHARED_DATA to "
                "the folder holding mnist/)")
  data_dir = str(tmp_path)
  with caplog.at_level(logging.WARNING):
    data_import.prepare("mnist", str(MNIST_DIR), data_dir)
  # The shared copies were re-gzipped, so tfds' registered sha256 differs.
  assert "validated by parsing" in caplog.text

  builder = data_import.open_builder("mnist", data_dir, ["train[55000:]"],
                                     download=False)
  assert list(builder.info.splits) == ["train"]
  labels = _labels("mnist", data_dir, "train")
  assert labels.shape == (60000,)
  counts = np.bincount(labels, minlength=10)
  assert counts.min() >= 5400 and counts.max() <= 6800, counts
  with gzip.open(MNIST_DIR / "train-labels-idx1-ubyte.gz") as f:
    np.testing.assert_array_equal(labels, np.frombuffer(f.read()[8:], np.uint8))
  ds = tfds.load("mnist", data_dir=data_dir, split="train[55000:]",
                 download=False, batch_size=-1)
  images = tfds.as_numpy(ds)["image"]
  assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8


def test_real_fashion_mnist(tmp_path):
  if not FASHION_MNIST_DIR.is_dir():
    pytest.skip(f"{FASHION_MNIST_DIR} is absent: install Debian's package "
                "dataset-fashion-mnist (apt-get install -y "
                "dataset-fashion-mnist)")
  data_dir = str(tmp_path)
  data_import.prepare("fashion_mnist", str(FASHION_MNIST_DIR), data_dir)

  builder = data_import.open_builder("fashion_mnist", data_dir,
                                     ["train", "test"], download=False)
  assert builder.info.splits["train"].num_examples == 60000
  assert builder.info.splits["test"].num_examples == 10000
  test_labels = _labels("fashion_mnist", data_dir, "test")
  np.testing.assert_array_equal(np.bincount(test_labels), [1000] * 10)
  example = next(iter(tfds.as_numpy(builder.as_dataset(split="train"))))
  assert example["image"].shape == (28, 28, 1)
