"""Input pipeline: tfds splits -> device-resident per-class arrays -> batches.

Data sets that fit in memory (SVHN, MNIST, the digits) are read once through
tfds, grouped by class into one padded uint8 array [K, N_max, H, W, C], and
kept on the device. Batches are then drawn *inside* the jitted train step
from an explicit PRNG key and the step number, so:
  * every GAN sees only its own class and reshuffles it each epoch
    (classes of unequal size each repeat at their own pace);
  * there is no host-to-device copy per step;
  * a resumed run draws exactly the batches an uninterrupted run would, with
    no iterator state to checkpoint.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import gansynth.data.datasets  # noqa: F401  (registers the bundled builders)
from gansynth.data import data_import
from gansynth.data import image_datasets
from gansynth.data.image_datasets import DatasetError
from gansynth.runtime import libraries


@flax.struct.dataclass
class ClassData:
  """Images grouped by class: images[k, :counts[k]] are class k's images."""
  images: jax.Array  # uint8 [K, N_max, H, W, C]
  counts: jax.Array  # int32 [K]


def open_builder(data_config: Any) -> tfds.core.DatasetBuilder:
  """The tfds builder of the real data set, prepared (or a clear error).

  The data sets bundled with gansynth are prepared locally; others are read
  if prepared in data_dir, else downloaded if allowed, else the error says
  which files to import (see data_import).
  """
  data_dir = data_config.data_dir or None
  if data_config.name in gansynth.data.datasets.LOCAL:
    with libraries.quiet_tfds():  # built here: no "Downloading ..." lines
      builder = tfds.builder(data_config.name, data_dir=data_dir)
      builder.download_and_prepare()
    return builder
  return data_import.open_builder(
      data_config.name, data_dir,
      [data_config.train_split, data_config.test_split],
      download=data_config.download)


def fit_tf(images: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
  """Centre-crops to a square, resizes (area) and sets channels, in TF.

  Works on one image [H, W, C] or a batch [N, H, W, C], so large data sets
  (CelebA) are shrunk inside tf.data before they reach memory.
  """
  c = images.shape[-1]
  if c != channels:
    if c == 1 and channels == 3:
      images = tf.repeat(images, 3, axis=-1)
    elif c == 3 and channels == 1:
      images = tf.round(tf.image.rgb_to_grayscale(tf.cast(images, tf.float32)))
    else:
      raise DatasetError(f"cannot turn {c}-channel images into {channels} "
                         "channels")
  h, w = images.shape[-3], images.shape[-2]
  if h != w:
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    images = images[..., top:top + s, left:left + s, :]
  if images.shape[-3] != image_size:
    images = tf.image.resize(images, (image_size, image_size), method="area",
                             antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(tf.cast(images, tf.float32)), 0,
                                  255), tf.uint8)


def fit_images(images: np.ndarray, image_size: int,
               channels: int) -> np.ndarray:
  """`fit_tf` for uint8 arrays already in memory (e.g. synthetic sources)."""
  if images.shape[1:] == (image_size, image_size, channels):
    return images
  return fit_tf(tf.constant(images), image_size, channels).numpy()


def load_split(data_config: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
  """A real split at the config's size: (uint8 [N, H, W, C], int32 [N])."""
  builder = open_builder(data_config)
  if data_config.name in gansynth.data.datasets.LOCAL:
    remedy = (f"Delete {builder.data_dir}; the next run prepares it again.")
  else:
    remedy = (f"Delete {builder.data_dir} and import the original files "
              f"again: {data_import.PREPARE_COMMAND}")
  images, labels = image_datasets.load_arrays(
      builder, split,
      fit=lambda x: fit_tf(x, data_config.image_size, data_config.channels),
      remedy=remedy)
  check_labels(labels, data_config.num_classes, f"{data_config.name}[{split}]")
  return images, labels


def class_names(data_config: Any) -> list[str]:
  """The data set's label names ("0".."9", "T-shirt/top", ...), else "0".."K-1"."""
  k = data_config.num_classes
  try:
    label = open_builder(data_config).info.features["label"]
    names = [str(n) for n in label.names]
  except (DatasetError, KeyError, AttributeError, TypeError):
    names = []
  return names if len(names) == k else [str(i) for i in range(k)]


def check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DatasetError(f"{what} has labels outside [0, {num_classes}): set "
                       "config.data.num_classes to match the data set")


def group_by_class(images: np.ndarray, labels: np.ndarray,
                   num_groups: int) -> ClassData:
  """Groups images by label (or all in one group for an unconditional GAN)."""
  if num_groups == 1:
    groups = [images]
  else:
    groups = [images[labels == k] for k in range(num_groups)]
    empty = [k for k, g in enumerate(groups) if len(g) == 0]
    if empty:
      raise DatasetError(f"the training data has no images of class(es) "
                         f"{empty}; every class GAN needs its own images")
  n_max = max(len(g) for g in groups)
  stacked = np.zeros((num_groups, n_max) + images.shape[1:], np.uint8)
  for k, g in enumerate(groups):
    stacked[k, :len(g)] = g
  return ClassData(images=stacked,
                   counts=np.array([len(g) for g in groups], np.int32))


def epoch_shuffled_indices(key: jax.Array, count: jax.Array, capacity: int,
                           batch_size: int, step: jax.Array) -> jax.Array:
  """Indices of batch `step` of an endless stream over `count` items.

  Each epoch is a fresh permutation of the first `count` of `capacity` slots
  (padding sorts last), keyed by fold_in(key, epoch). A batch can straddle
  two epochs; callers must keep batch_size <= count.
  """
  pos = step * batch_size + jnp.arange(batch_size)
  epoch, offset = pos // count, pos % count
  valid = jnp.arange(capacity) < count

  def order(e):
    u = jax.random.uniform(jax.random.fold_in(key, e), (capacity,))
    return jnp.argsort(jnp.where(valid, u, 2.0))

  first = epoch[0]

  def straddling():
    return jnp.where(epoch == first, order(first)[offset],
                     order(first + 1)[offset])

  # One permutation (a sort of `capacity` keys) unless the batch crosses
  # into the next epoch; under vmap both branches run, as a select.
  return jax.lax.cond(epoch[-1] == first, lambda: order(first)[offset],
                      straddling)


def class_batch(key: jax.Array, images: jax.Array, count: jax.Array,
                batch_size: int, step: jax.Array) -> jax.Array:
  """Batch `step` of one class's stored images (uint8 [N_max, ...], the
  first `count` real), as float32 in [-1, 1]; drawn inside the jitted step."""
  idx = epoch_shuffled_indices(key, count, images.shape[0], batch_size, step)
  return to_float(images[idx])


def per_class_batch(batch_size: int, num_classes: int) -> int:
  """Images drawn from each class for a balanced batch (0 classes: one
  class, the whole batch)."""
  return -(-batch_size // num_classes) if num_classes else batch_size


def balanced_labels(batch_size: int, num_classes: int) -> jax.Array:
  """Labels 0, 1, ..., K-1, 0, 1, ...: every class within one of B / K."""
  return jnp.arange(batch_size, dtype=jnp.int32) % num_classes


def balanced_batch(key: jax.Array, images: jax.Array, counts: jax.Array,
                   batch_size: int, step: jax.Array
                   ) -> tuple[jax.Array, jax.Array]:
  """Batch `step` over all classes (images uint8 [K, N_max, ...], counts
  [K]), labels balanced as `balanced_labels`: (float32 images, int32 labels).

  Class k's images come from its own epoch-shuffled stream (class_batch,
  keyed by fold_in(key, k)), so every class repeats at its own pace and the
  batch is a pure function of (key, step).
  """
  k = images.shape[0]
  per = per_class_batch(batch_size, k)
  draws = jax.vmap(lambda c, im, n: class_batch(
      jax.random.fold_in(key, c), im, n, per, step))(jnp.arange(k), images,
                                                      counts)
  labels = balanced_labels(batch_size, k)
  return draws[labels, jnp.arange(batch_size) // k], labels


def to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], the range of the generator's tanh."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255]."""
  return np.asarray(jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255),
                    np.uint8)


def in_batches(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
  """fn on `images` batch by batch, as one numpy array. The last batch is
  padded with zeros to the same shape, so a jitted fn compiles once."""
  out = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    pad = batch_size - len(batch)
    if pad:
      batch = np.concatenate([batch, np.zeros((pad,) + batch.shape[1:],
                                              batch.dtype)])
    out.append(np.asarray(fn(batch))[:batch_size - pad])
  return np.concatenate(out)


def check_batch_size(counts: np.ndarray, batch_size: int, what: str) -> None:
  small = int(np.min(counts))
  if batch_size > small:
    raise DatasetError(
        f"{what}: batch size {batch_size} is larger than the smallest class "
        f"({small} images, class {int(np.argmin(counts))}); lower the batch "
        "size or use more data")
