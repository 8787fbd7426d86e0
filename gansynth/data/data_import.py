"""Imports original data set files into tfds' format, for machines offline.

Online, ``tfds.load`` downloads a registered data set itself. Offline, a user
with the original files (MNIST's IDX files, SVHN's ``.mat`` files, or a folder
of images) imports them once with `prepare`; every later stage then reads them
through the standard ``tfds.builder(name, data_dir=...)``, as after a download.

Registered names (``mnist``, ``fashion_mnist``, ``svhn_cropped``) are written
with the registered builder's name, version and features into
``data_dir/name/version/``, so the registered builder finds them prepared.
Image folders go to ``data_dir/name/1.0.0/`` and tfds finds them by name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import zlib
from typing import Callable, Iterator, Mapping, Sequence

from absl import logging
import numpy as np
from PIL import Image
import scipy.io
import tensorflow_datasets as tfds

from gansynth.data import image_datasets
from gansynth.runtime import libraries
from gansynth.runtime import progress

DatasetError = image_datasets.DatasetError

PREPARE_COMMAND = (
    "python -m gansynth.main --config configs/<config>.py --workdir <dir> "
    "--config.data.source_dir=<folder with the files> --config.stages=prepare")

IDX_FILES = {  # split -> (images, labels), each optionally ending in .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat",
              "extra": "extra_32x32.mat"}
SVHN_OPTIONAL_SPLITS = ("extra",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_IDX_IMAGES_MAGIC = 0x803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x801  # unsigned bytes, 1 dimension
_MNIST_SIZE = 28
_NUM_DIGITS = 10

Examples = Iterator[tuple[int, dict]]


def prepare(name: str, source_dir: str,
            data_dir: str) -> tfds.core.DatasetBuilder:
  """Imports the original files in `source_dir` as tfds data set `name`.

  Everything is parsed and validated before anything is written, so a bad
  file leaves `data_dir` untouched. A data set already prepared in `data_dir`
  is kept (delete its directory to import again).

  Args:
    name: ``mnist`` or ``fashion_mnist`` (IDX files), ``svhn_cropped``
      (``.mat`` files), or a new name for a folder ``split/class/*.png``.
    source_dir: the folder holding the original files.
    data_dir: the tfds ``data_dir`` to write into.

  Returns:
    The builder that reads the imported data set, as `open_builder` would.
  """
  if not os.path.isdir(source_dir):
    raise DatasetError(f"source_dir {source_dir} is not a directory")
  importer = _IMPORTERS.get(name)
  if importer is None:
    return _prepare_folder(name, source_dir, data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    logging.info("%s is already prepared in %s; not importing again.",
                 name, builder.data_dir)
    return builder
  _store(builder, importer(name, source_dir), data_dir)
  return tfds.builder(name, data_dir=data_dir)


def open_builder(name: str, data_dir: str | None, splits: Sequence[str],
                 download: bool) -> tfds.core.DatasetBuilder:
  """Returns the builder of a prepared data set that has `splits`.

  Args:
    name: the tfds name (registered or imported with `prepare`).
    data_dir: the tfds ``data_dir``; None means tfds' default.
    splits: split specs to be read, e.g. ``["train[:55000]", "test"]``.
    download: whether tfds may download and prepare a missing data set.

  Raises:
    DatasetError: the data set is not prepared (and could not be downloaded),
      saying which files to import and how; or a split does not exist.
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise DatasetError(not_prepared_message(name, data_dir)) from None
  if not _is_readable(builder, splits):
    if not download:
      raise DatasetError(not_prepared_message(name, data_dir))
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      reason = (str(e).splitlines() or [""])[0]
      raise DatasetError(f"{not_prepared_message(name, data_dir)}\nThe "
                         f"download failed ({type(e).__name__}: {reason})."
                        ) from None
  _check_splits(builder, splits)
  return builder


def not_prepared_message(name: str, data_dir: str | None) -> str:
  """Says which original files to supply for `name` and how to import them."""
  where = data_dir or "tfds' default data_dir"
  if name in ("mnist", "fashion_mnist"):
    supply = (f"put the IDX files {_idx_file_list()} (gzipped or not; a split "
              "whose files are absent is skipped) in one folder")
  elif name == "svhn_cropped":
    supply = ("put SVHN's files train_32x32.mat and test_32x32.mat "
              "(optionally extra_32x32.mat) in one folder")
  else:
    supply = ("lay out images as <folder>/<split>/<class_name>/*.png (or "
              "*.jpg), e.g. train/cat/0001.png (sorted class names give the "
              "label ids)")
    if _is_registered(name):
      supply = (f"{supply}, under a new data set name (e.g. {name}_folder) "
                f"since tfds registers {name} with its own features")
  return (f"Data set {name} is not prepared in {where}. Offline, {supply}, "
          f"and import them with:\n  {PREPARE_COMMAND}")


def _is_readable(builder: tfds.core.DatasetBuilder,
                 splits: Sequence[str]) -> bool:
  """Whether tfds can read the data: prepared, or mocked by tfds.testing."""
  if builder.is_prepared():
    return True
  try:
    builder.as_dataset(split=splits[0] if splits else "train")
  except Exception:  # pylint: disable=broad-except
    return False
  return True


def _check_splits(builder: tfds.core.DatasetBuilder,
                  splits: Sequence[str]) -> None:
  """Checks the base names of split specs like ``train[:55000]+test``."""
  available = list(builder.info.splits)
  if not available:  # Split info unknown (tfds.testing.mock_data).
    return
  for spec in splits:
    for part in spec.split("+"):
      base = part.split("[")[0].strip()
      if base not in available:
        raise DatasetError(
            f"Data set {builder.name} in {builder.data_dir} has no split "
            f"'{base}' (from '{spec}'); available splits: "
            f"{', '.join(available)}")


def _is_registered(name: str) -> bool:
  try:
    tfds.builder_cls(name)
  except tfds.core.registered.DatasetNotFoundError:
    return False
  return True


def _store(builder: tfds.core.DatasetBuilder,
           split_examples: Mapping[str, Examples], data_dir: str) -> None:
  """Writes examples with `builder`'s name, version and features.

  Shuffling is disabled so splits keep the files' order and slices such as
  ``train[55000:]`` are the canonical ones.
  """
  info = builder.info
  # Written here: no "Downloading ..." lines; tfds' bars for a long import.
  with libraries.quiet_tfds(bars=progress.enabled()):
    tfds.dataset_builders.store_as_tfds_dataset(
        name=builder.name, version=builder.version, features=info.features,
        split_datasets=split_examples, data_dir=data_dir,
        description=info.description, homepage=info.homepage,
        citation=info.citation, disable_shuffling=True)


# Reading source files.


def _read_source(path: str, name: str) -> bytes:
  """Reads a file, checks tfds' registered sha256 and un-gzips ``.gz``."""
  with open(path, "rb") as f:
    raw = f.read()
  _check_checksum(path, raw, name)
  if not path.endswith(".gz"):
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DatasetError(f"{path} is not a complete gzip file ({e})") from None


def _check_checksum(path: str, raw: bytes, name: str) -> None:
  """Warns when a file differs from the one tfds would download."""
  url_infos = tfds.builder_cls(name).url_infos or {}
  registered = {info.filename: info.checksum for info in url_infos.values()}
  expected = registered.get(os.path.basename(path))
  if expected is None:
    return
  actual = hashlib.sha256(raw).hexdigest()
  if actual != expected:
    logging.warning(
        "%s: sha256 %s differs from the checksum %s that tfds registers for "
        "%s (e.g. a re-compressed copy); importing it anyway, its content is "
        "validated by parsing instead.", path, actual, expected, name)


def _idx_file_list() -> str:
  return ", ".join(f"{f}.gz" for pair in IDX_FILES.values() for f in pair)


def _find(source_dir: str, stem: str) -> str | None:
  for file_name in (stem + ".gz", stem):
    path = os.path.join(source_dir, file_name)
    if os.path.exists(path):
      return path
  return None


def _parse_idx(path: str, data: bytes, magic: int,
               shape: tuple[int, ...]) -> np.ndarray:
  """Parses an IDX array of unsigned bytes; `shape` is its size after N."""
  ndim = len(shape) + 1
  header = 4 + 4 * ndim
  if len(data) < header:
    raise DatasetError(f"{path} is truncated: {len(data)} bytes is shorter "
                       "than an IDX header")
  found = int.from_bytes(data[:4], "big")
  if found != magic:
    raise DatasetError(f"{path} has magic number {found:#x}, not {magic:#x} "
                       f"of an IDX file of {ndim}-d unsigned bytes")
  dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
               for i in range(ndim))
  if dims[1:] != shape:
    raise DatasetError(f"{path} holds items of shape {dims[1:]}, expected "
                       f"{shape}")
  size = int(np.prod(dims))
  if len(data) - header != size:
    raise DatasetError(f"{path} is truncated or padded: its header says "
                       f"{' x '.join(map(str, dims))} = {size} bytes, it has "
                       f"{len(data) - header}")
  return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _read_idx_split(name: str, images_path: str,
                    labels_path: str) -> tuple[np.ndarray, np.ndarray]:
  images = _parse_idx(images_path, _read_source(images_path, name),
                      _IDX_IMAGES_MAGIC, (_MNIST_SIZE, _MNIST_SIZE))
  labels = _parse_idx(labels_path, _read_source(labels_path, name),
                      _IDX_LABELS_MAGIC, ())
  if len(labels) != len(images):
    raise DatasetError(f"{labels_path} has {len(labels)} labels but "
                       f"{images_path} has {len(images)} images")
  if labels.size and labels.max() >= _NUM_DIGITS:
    raise DatasetError(f"{labels_path} has label {labels.max()}, outside "
                       f"0..{_NUM_DIGITS - 1}")
  return images[..., None], labels


def _import_idx(name: str, source_dir: str) -> dict[str, Examples]:
  """Reads MNIST-style IDX files; a split without its files is skipped."""
  splits = {}
  for split, stems in IDX_FILES.items():
    paths = [_find(source_dir, stem) for stem in stems]
    if paths == [None, None]:
      continue
    if None in paths:
      missing = stems[paths.index(None)]
      raise DatasetError(f"{source_dir} has only one of the two {split} "
                         f"files: {missing}(.gz) is missing")
    images, labels = _read_idx_split(name, *paths)
    splits[split] = _examples(images, labels)
  if not splits:
    raise DatasetError(f"{source_dir} has none of the IDX files of {name}: "
                       f"{_idx_file_list()}")
  return splits


def _read_svhn(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads SVHN's X (32x32x3xN uint8) and y (Nx1, 10 meaning 0)."""
  raw = _read_source(path, "svhn_cropped")
  try:
    mat = scipy.io.loadmat(io.BytesIO(raw), variable_names=("X", "y"))
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetError(f"{path} is not a readable MATLAB file "
                       f"({type(e).__name__}: {e})") from None
  if "X" not in mat or "y" not in mat:
    raise DatasetError(f"{path} lacks the variables X and y of SVHN")
  x, y = mat["X"], mat["y"]
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
    raise DatasetError(f"{path}: X is {x.dtype} of shape {x.shape}, expected "
                       "uint8 of shape 32x32x3xN")
  if y.ndim != 2 or y.shape[1] != 1:
    raise DatasetError(f"{path}: y has shape {y.shape}, expected Nx1")
  if y.shape[0] != x.shape[3]:
    raise DatasetError(f"{path} has {y.shape[0]} labels in y but "
                       f"{x.shape[3]} images in X")
  y = y[:, 0].astype(np.int64)
  bad = y[(y < 1) | (y > 10)]
  if bad.size:
    raise DatasetError(f"{path} has label {bad[0]} in y, outside SVHN's 1..10")
  return np.moveaxis(x, -1, 0), y % 10


def _import_svhn(name: str, source_dir: str) -> dict[str, Examples]:
  """Reads SVHN's cropped-digit ``.mat`` files."""
  splits = {}
  for split, file_name in SVHN_FILES.items():
    path = os.path.join(source_dir, file_name)
    if not os.path.exists(path):
      if split in SVHN_OPTIONAL_SPLITS:
        continue
      raise DatasetError(f"{path} is missing; {name} needs "
                         + ", ".join(f for s, f in SVHN_FILES.items()
                                     if s not in SVHN_OPTIONAL_SPLITS))
    images, labels = _read_svhn(path)
    splits[split] = _examples(images, labels,
                              lambda i, s=split: {"id": f"{s}_{i:06d}"})
  return splits


def _examples(images: np.ndarray, labels: np.ndarray,
              extra: Callable[[int], dict] | None = None) -> Examples:
  """Yields keyed examples; `extra` adds features some builders have."""
  for i, (image, label) in enumerate(zip(images, labels)):
    example = {"image": image, "label": int(label)}
    if extra is not None:
      example.update(extra(i))
    yield i, example


_IMPORTERS = {"mnist": _import_idx, "fashion_mnist": _import_idx,
              "svhn_cropped": _import_svhn}


# Image folders.


def _prepare_folder(name: str, source_dir: str,
                    data_dir: str) -> tfds.core.DatasetBuilder:
  """Imports ``split/class/*.png`` as a data set with named classes."""
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
    raise DatasetError(f"data set name '{name}' must be snake_case (lower "
                       "case letters, digits and _) for tfds")
  if _is_registered(name):
    raise DatasetError(
        f"tfds registers {name} with its own features, so an image folder "
        f"cannot be imported under that name; choose a new one (e.g. "
        f"{name}_folder) or let tfds download {name} online")
  directory = image_datasets.dataset_dir(data_dir, name)
  if os.path.exists(os.path.join(directory, "dataset_info.json")):
    logging.info("%s is already prepared in %s; not importing again.",
                 name, directory)
    return tfds.builder(name, data_dir=data_dir)
  splits, class_names = _read_folder(source_dir)
  shape = next(iter(splits.values()))[0].shape[1:]
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=shape, dtype=np.uint8,
                                   encoding_format="png"),
      "label": tfds.features.ClassLabel(names=class_names),
  })
  tfds.dataset_builders.store_as_tfds_dataset(
      name=name, version=image_datasets.VERSION, features=features,
      split_datasets={s: _examples(*arrays) for s, arrays in splits.items()},
      data_dir=data_dir, description=f"Images imported from {source_dir}.",
      disable_shuffling=True)
  return tfds.builder(name, data_dir=data_dir)


def _subdirs(directory: str) -> list[str]:
  return sorted(d for d in os.listdir(directory)
                if os.path.isdir(os.path.join(directory, d)))


def _read_folder(source_dir: str) -> tuple[
    dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
  """Reads all splits; labels index the sorted union of class folders."""
  layout = "expected <split>/<class_name>/*.png (or *.jpg)"
  split_names = _subdirs(source_dir)
  if not split_names:
    raise DatasetError(f"{source_dir} has no split folders; {layout}")
  class_names = sorted({c for s in split_names
                        for c in _subdirs(os.path.join(source_dir, s))})
  if not class_names:
    raise DatasetError(f"{source_dir} has no class folders; {layout}")
  first = None  # (path, shape) of the first image, which all must match.
  splits = {}
  for split in split_names:
    images, labels = [], []
    for label, class_name in enumerate(class_names):
      class_dir = os.path.join(source_dir, split, class_name)
      if not os.path.isdir(class_dir):
        continue
      for file_name in sorted(os.listdir(class_dir)):
        if not file_name.lower().endswith(IMAGE_SUFFIXES):
          continue
        path = os.path.join(class_dir, file_name)
        image = _read_image(path)
        first = first or (path, image.shape)
        if image.shape != first[1]:
          raise DatasetError(
              f"{path} has shape {image.shape}, unlike {first[1]} of "
              f"{first[0]}; all images must have one shape")
        images.append(image)
        labels.append(label)
    if not images:
      raise DatasetError(f"{os.path.join(source_dir, split)} has no images; "
                         f"{layout}")
    splits[split] = (np.stack(images), np.asarray(labels, np.int64))
  return splits, class_names


def _read_image(path: str) -> np.ndarray:
  """Reads an image as uint8 [H, W, 1] (grey) or [H, W, 3] (anything else)."""
  try:
    with Image.open(path) as image:
      if image.mode != "L":
        image = image.convert("RGB")
      array = np.asarray(image, np.uint8)
  except (OSError, ValueError) as e:
    raise DatasetError(f"{path} is not a readable image ({e})") from None
  return array[..., None] if array.ndim == 2 else array
