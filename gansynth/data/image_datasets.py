"""Labelled image data sets on disk, in tfds' own format.

Every source the classifier stage trains on (real, GAN, procedural) is a tfds
data set with the features ``{"image": uint8 [H, W, C], "label": int}``. Real
data comes from a registered tfds builder (``tfds.builder(name, data_dir)``);
synthetic data is written here with ``tfds.dataset_builders.store_as_tfds_dataset``
and read back with ``tfds.builder_from_directory``. So one reader serves all.
"""

from __future__ import annotations

import os
from typing import Mapping
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from gansynth import paths
from gansynth.runtime import libraries

VERSION = paths.DATASET_VERSION


class DatasetError(ValueError):
  """A data set is missing, malformed or does not fit the config."""


def image_features(shape: tuple[int, int, int], num_classes: int):
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=tuple(shape), dtype=np.uint8,
                                   encoding_format="png"),
      "label": tfds.features.ClassLabel(num_classes=num_classes),
  })


def write_image_dataset(root_dir: str, name: str,
                        splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
                        num_classes: int, description: str = "") -> str:
  """Writes labelled uint8 images as a tfds data set; returns its directory.

  Args:
    root_dir: the tfds ``data_dir`` to write into.
    name: the data set name (a directory ``root_dir/name/1.0.0`` is made).
    splits: split name -> (images uint8 [N, H, W, C], labels int [N]).
    num_classes: number of labels.
    description: stored in the data set's info.
  """
  shape = None
  split_datasets = {}
  for split, (images, labels) in splits.items():
    images = np.asarray(images)
    labels = np.asarray(labels, np.int64)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise DatasetError(f"{name}/{split}: images must be uint8 [N, H, W, C], "
                         f"got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
      raise DatasetError(f"{name}/{split}: {labels.shape[0]} labels for "
                         f"{images.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise DatasetError(f"{name}/{split}: labels outside [0, {num_classes})")
    if shape is not None and images.shape[1:] != shape:
      raise DatasetError(f"{name}: splits differ in image shape")
    shape = images.shape[1:]
    split_datasets[split] = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": labels})
  with libraries.quiet_tfds():  # written here: no "Downloading ..." lines
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version=VERSION,
        features=image_features(shape, num_classes),
        split_datasets=split_datasets, data_dir=root_dir,
        description=description, disable_shuffling=True)
  return os.fspath(builder.data_dir)


def dataset_dir(root_dir: str, name: str) -> str:
  return paths.dataset_dir(root_dir, name)


def load_arrays(builder: tfds.core.DatasetBuilder, split: str,
                fit=None, remedy: str = "") -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole split into memory: (uint8 [N, H, W, C], int32 [N]).

  `fit` (tf image -> tf image) runs inside tf.data, before the split is held
  in memory. Data sets without labels (CelebA) get label 0. A damaged file
  raises DatasetError naming it, followed by `remedy` (how to remake it).
  """
  try:
    return _load_arrays(builder, split, fit)
  except tf.errors.OpError as e:
    reason = (e.message.splitlines() or [""])[0][:200]
    bad = damaged_file(builder, split) or f"a file in {builder.data_dir}"
    raise DatasetError(
        f"{builder.name}[{split}] cannot be read: {bad} is damaged "
        f"({type(e).__name__}: {reason}). {remedy}") from None


def damaged_file(builder: tfds.core.DatasetBuilder, split: str) -> str | None:
  """The first record file of `split` whose records fail their checksums."""
  try:
    paths = builder.info.splits[split.split("[")[0]].filepaths
  except (KeyError, ValueError):
    return None
  for path in paths:
    try:
      for _ in tf.data.TFRecordDataset(os.fspath(path)):
        pass
    except tf.errors.OpError:
      return os.fspath(path)
  return None


def _load_arrays(builder, split, fit):
  def example(ex):
    image = ex["image"]
    if image.shape.rank == 2:
      image = image[..., None]
    label = ex["label"] if "label" in ex else tf.constant(0, tf.int64)
    return {"image": fit(image) if fit else image, "label": label}

  ds = builder.as_dataset(split=split, shuffle_files=False)
  ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
  images, labels = [], []
  for batch in tfds.as_numpy(ds):
    images.append(batch["image"])
    labels.append(batch["label"])
  if not images:
    raise DatasetError(f"{builder.name}[{split}] is empty")
  return (np.concatenate(images).astype(np.uint8),
          np.concatenate(labels).astype(np.int32))


def load_written(directory: str, split: str,
                 remedy: str = "") -> tuple[np.ndarray, np.ndarray]:
  """Reads a split of a data set written by `write_image_dataset`."""
  if not tf.io.gfile.exists(os.path.join(directory, "dataset_info.json")):
    raise DatasetError(f"no data set at {directory}: run the stage that "
                       "writes it first (see docs/configs.md, 'Stages')")
  return load_arrays(tfds.builder_from_directory(directory), split,
                     remedy=remedy)


def arrays_digest(images: np.ndarray, labels: np.ndarray) -> str:
  """CRC32 of a labelled set's uint8 images and int64 labels, as read back."""
  crc = zlib.crc32(np.ascontiguousarray(labels, np.int64).reshape(-1))
  crc = zlib.crc32(np.ascontiguousarray(images, np.uint8).reshape(-1), crc)
  return f"{crc:08x}"


def files_digest(directory: str) -> dict[str, str]:
  """CRC32 of every file under `directory`, by path relative to it: cheap to
  recheck (no decoding), and any damaged byte changes one."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in sorted(files):
      path = os.path.join(root, name)
      crc = 0
      with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
          crc = zlib.crc32(chunk, crc)
      out[os.path.relpath(path, directory)] = f"{crc:08x}"
  return out
