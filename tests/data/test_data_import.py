"""Offline import of original data set files into tfds' format."""

import gzip
import logging
import os

import numpy as np
from PIL import Image
import pytest
import scipy.io
import tensorflow_datasets as tfds

from gansynth.data import data_import
from gansynth.data.image_datasets import DatasetError


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
  header = magic.to_bytes(4, "big") + b"".join(
      d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write(path, data: bytes) -> str:
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(data)
  return str(path)


def _write_idx(folder, prefix, images, labels, gz=True):
  ext = ".gz" if gz else ""
  _write(folder / f"{prefix}-images-idx3-ubyte{ext}", _idx_bytes(images, 0x803))
  _write(folder / f"{prefix}-labels-idx1-ubyte{ext}", _idx_bytes(labels, 0x801))


def _digits(n, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  return images, np.arange(n) % 10


def _read(name, data_dir, split):
  data = tfds.as_numpy(tfds.load(name, data_dir=data_dir, split=split,
                                 download=False, batch_size=-1))
  return data["image"], data["label"]


@pytest.fixture
def mnist_dir(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  _write_idx(source, "train", *_digits(50))
  _write_idx(source, "t10k", *_digits(20, seed=1), gz=False)
  return source


def test_mnist_import_reads_back_through_registered_builder(mnist_dir,
                                                            tmp_path):
  data_dir = str(tmp_path / "tfds")
  data_import.prepare("mnist", str(mnist_dir), data_dir)

  builder = tfds.builder("mnist", data_dir=data_dir)
  assert builder.is_prepared()
  assert str(builder.version) == "3.0.1"
  assert os.path.isdir(os.path.join(data_dir, "mnist", "3.0.1"))
  images, labels = _read("mnist", data_dir, "train")
  expected_images, expected_labels = _digits(50)
  assert images.shape == (50, 28, 28, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int64
  np.testing.assert_array_equal(images[..., 0], expected_images)  # In order.
  np.testing.assert_array_equal(labels, expected_labels)
  test_images, _ = _read("mnist", data_dir, "test")
  assert test_images.shape == (20, 28, 28, 1)
  assert len(_read("mnist", data_dir, "train[40:]")[0]) == 10


def test_fashion_mnist_train_only_keeps_class_names(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  _write_idx(source, "train", *_digits(30))
  data_dir = str(tmp_path / "tfds")
  data_import.prepare("fashion_mnist", str(source), data_dir)

  builder = data_import.open_builder("fashion_mnist", data_dir,
                                     ["train[:20]", "train[20:]"],
                                     download=False)
  assert list(builder.info.splits) == ["train"]
  assert builder.info.features["label"].names[0] == "T-shirt/top"
  assert builder.info.splits["train"].num_examples == 30


def test_prepare_twice_keeps_the_data(mnist_dir, tmp_path):
  data_dir = str(tmp_path / "tfds")
  data_import.prepare("mnist", str(mnist_dir), data_dir)
  builder = data_import.prepare("mnist", str(mnist_dir), data_dir)
  assert builder.info.splits["train"].num_examples == 50


def test_checksum_mismatch_warns_and_imports(mnist_dir, tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    data_import.prepare("mnist", str(mnist_dir), str(tmp_path / "tfds"))
  warnings = [r.getMessage() for r in caplog.records
              if "validated by parsing" in r.getMessage()]
  assert any("train-images-idx3-ubyte.gz" in w for w in warnings)
  assert any("train-labels-idx1-ubyte.gz" in w for w in warnings)


def _svhn(path, n, labels=None):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
  y = (np.arange(n) % 10 + 1 if labels is None else np.asarray(labels))
  scipy.io.savemat(path, {"X": x, "y": y.reshape(-1, 1).astype(np.uint8)})
  return x


def test_svhn_import_maps_label_10_to_0(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  x = _svhn(source / "train_32x32.mat", 25)
  _svhn(source / "test_32x32.mat", 12)
  data_dir = str(tmp_path / "tfds")
  data_import.prepare("svhn_cropped", str(source), data_dir)

  builder = tfds.builder("svhn_cropped", data_dir=data_dir)
  assert builder.is_prepared() and str(builder.version) == "3.1.0"
  assert sorted(builder.info.splits) == ["test", "train"]
  images, labels = _read("svhn_cropped", data_dir, "train")
  assert images.shape == (25, 32, 32, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(images, np.moveaxis(x, -1, 0))
  np.testing.assert_array_equal(labels, (np.arange(25) % 10 + 1) % 10)
  assert labels.min() == 0 and labels.max() == 9
  example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
  assert example["id"] == b"test_000000"


def test_svhn_label_out_of_range(tmp_path):
  _svhn(tmp_path / "train_32x32.mat", 5, labels=[1, 2, 11, 3, 4])
  _svhn(tmp_path / "test_32x32.mat", 5)
  with pytest.raises(DatasetError, match=r"train_32x32\.mat has label 11"):
    data_import.prepare("svhn_cropped", str(tmp_path), str(tmp_path / "d"))


def test_svhn_missing_test_file(tmp_path):
  _svhn(tmp_path / "train_32x32.mat", 5)
  with pytest.raises(DatasetError, match=r"test_32x32\.mat is missing"):
    data_import.prepare("svhn_cropped", str(tmp_path), str(tmp_path / "d"))


def test_svhn_wrong_shape_and_corrupt_file(tmp_path):
  scipy.io.savemat(tmp_path / "train_32x32.mat",
                   {"X": np.zeros((28, 28, 3, 2), np.uint8),
                    "y": np.ones((2, 1), np.uint8)})
  _svhn(tmp_path / "test_32x32.mat", 2)
  with pytest.raises(DatasetError, match=r"train_32x32\.mat: X is .*28, 28"):
    data_import.prepare("svhn_cropped", str(tmp_path), str(tmp_path / "d"))
  _write(tmp_path / "train_32x32.mat", b"not a mat file at all")
  with pytest.raises(DatasetError, match=r"train_32x32\.mat is not a readable"):
    data_import.prepare("svhn_cropped", str(tmp_path), str(tmp_path / "d"))


def _folder(root, shapes=None):
  """Writes 2 splits x 3 classes of 8x6 RGB PNGs; returns the counts."""
  counts = {"train": [3, 2, 4], "test": [1, 2, 1]}
  for split, per_class in counts.items():
    for class_name, n in zip(["cat", "bird", "dog"], per_class):
      class_dir = root / split / class_name
      class_dir.mkdir(parents=True)
      for i in range(n):
        image = np.full((8, 6, 3), i * 40, np.uint8)
        Image.fromarray(image).save(class_dir / f"{i}.png")
  return counts


def test_image_folder_import(tmp_path):
  source = tmp_path / "src"
  _folder(source)
  data_dir = str(tmp_path / "tfds")
  data_import.prepare("my_pets", str(source), data_dir)

  builder = data_import.open_builder("my_pets", data_dir, ["train", "test"],
                                     download=False)
  assert builder.info.features["label"].names == ["bird", "cat", "dog"]
  images, labels = _read("my_pets", data_dir, "train")
  assert images.shape == (9, 8, 6, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(labels), [2, 3, 4])
  _, test_labels = _read("my_pets", data_dir, "test")
  np.testing.assert_array_equal(np.bincount(test_labels), [2, 1, 1])


def test_image_folder_shapes_must_agree(tmp_path):
  _folder(tmp_path / "src")
  odd = tmp_path / "src" / "test" / "dog" / "odd.png"
  Image.fromarray(np.zeros((9, 6, 3), np.uint8)).save(odd)
  with pytest.raises(DatasetError, match=r"odd\.png has shape \(9, 6, 3\)"):
    data_import.prepare("my_pets", str(tmp_path / "src"), str(tmp_path / "d"))


def test_image_folder_under_registered_name_is_refused(tmp_path):
  _folder(tmp_path / "src")
  with pytest.raises(DatasetError, match="celeb_a_folder"):
    data_import.prepare("celeb_a", str(tmp_path / "src"), str(tmp_path / "d"))


@pytest.mark.parametrize("corrupt, message", [
    (lambda data: data[:len(data) // 2], "not a complete gzip file"),
    (lambda data: gzip.compress(gzip.decompress(data)[:-100]),
     "truncated or padded: its header says 50 x 28 x 28 = 39200 bytes"),
    (lambda data: gzip.compress(b"\0\0\x08\x01" + gzip.decompress(data)[4:]),
     "magic number 0x801, not 0x803"),
])
def test_corrupt_idx_images(mnist_dir, tmp_path, corrupt, message):
  path = mnist_dir / "train-images-idx3-ubyte.gz"
  path.write_bytes(corrupt(path.read_bytes()))
  with pytest.raises(DatasetError, match=message) as error:
    data_import.prepare("mnist", str(mnist_dir), str(tmp_path / "tfds"))
  assert str(path) in str(error.value)
  assert not os.path.exists(tmp_path / "tfds" / "mnist" / "3.0.1")


def test_idx_wrong_shape(tmp_path):
  _write(tmp_path / "train-images-idx3-ubyte.gz",
         _idx_bytes(np.zeros((5, 32, 32)), 0x803))
  _write(tmp_path / "train-labels-idx1-ubyte.gz",
         _idx_bytes(np.zeros(5), 0x801))
  with pytest.raises(DatasetError, match=r"images-idx3-ubyte\.gz holds items "
                     r"of shape \(32, 32\), expected \(28, 28\)"):
    data_import.prepare("mnist", str(tmp_path), str(tmp_path / "d"))


def test_idx_label_count_and_range(tmp_path):
  images, labels = _digits(10)
  _write_idx(tmp_path, "train", images, labels[:9])
  with pytest.raises(DatasetError, match=r"labels-idx1-ubyte\.gz has 9 labels "
                     r"but .*images-idx3-ubyte\.gz has 10 images"):
    data_import.prepare("mnist", str(tmp_path), str(tmp_path / "d"))
  _write_idx(tmp_path, "train", images, np.full(10, 12))
  with pytest.raises(DatasetError, match=r"labels-idx1-ubyte\.gz has label 12"):
    data_import.prepare("mnist", str(tmp_path), str(tmp_path / "d"))


def test_no_idx_files(tmp_path):
  with pytest.raises(DatasetError, match="has none of the IDX files of mnist"):
    data_import.prepare("mnist", str(tmp_path), str(tmp_path / "d"))


@pytest.mark.parametrize("name, files", [
    ("mnist", "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
     "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"),
    ("svhn_cropped", "train_32x32.mat and test_32x32.mat"),
    ("celeb_a", "<split>/<class_name>/*.png"),
    ("my_pets", "<split>/<class_name>/*.png"),
])
def test_missing_data_says_what_to_import(tmp_path, name, files):
  with pytest.raises(DatasetError) as error:
    data_import.open_builder(name, str(tmp_path), ["train"], download=False)
  message = str(error.value)
  assert f"{name} is not prepared in {tmp_path}" in message
  assert files in message
  assert data_import.PREPARE_COMMAND in message
  assert "--config.data.source_dir=" in message


def test_unknown_split(mnist_dir, tmp_path):
  data_dir = str(tmp_path / "tfds")
  data_import.prepare("mnist", str(mnist_dir), data_dir)
  data_import.open_builder("mnist", data_dir, ["train[:40]", "test[50%:]"],
                           download=False)
  with pytest.raises(DatasetError, match="no split 'validation' .*available "
                     "splits: train, test"):
    data_import.open_builder("mnist", data_dir, ["train+validation[:5]"],
                             download=False)


@pytest.mark.parametrize("download", [False, True])
def test_open_builder_under_mock_data(tmp_path, download):
  with tfds.testing.mock_data(num_examples=4):
    builder = data_import.open_builder("celeb_a", str(tmp_path), ["train"],
                                       download=download)
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
  assert len(examples) == 4 and examples[0]["image"].shape == (218, 178, 3)
