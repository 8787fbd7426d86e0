"""Input pipeline: per-class streams, epoch shuffling, tfds reading."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gansynth.data import input_pipeline
from gansynth.data.image_datasets import DatasetError


def test_each_gan_gets_only_its_own_class_from_tfds(tiny_config):
  """Through tfds (mocked MNIST): group k holds exactly class k's images."""
  config = tiny_config
  config.data.name = "mnist"
  config.data.image_size = 28
  with tfds.testing.mock_data(num_examples=120):
    images, labels = input_pipeline.load_split(config.data, "train")
  assert images.shape == (120, 28, 28, 1) and images.dtype == np.uint8
  data = input_pipeline.group_by_class(images, labels, 10)
  assert data.images.shape[:2] == (10, np.bincount(labels).max())
  label_of = {img.tobytes(): lab for img, lab in zip(images, labels)}
  for k in range(10):
    group = data.images[k, :data.counts[k]]
    assert len(group) == np.sum(labels == k)
    assert {label_of[g.tobytes()] for g in group} <= {k}


def test_sampled_batches_stay_in_class_and_cover_each_epoch():
  """Batches never touch padding, and each epoch visits every image once."""
  count, capacity, batch = 13, 20, 5
  key = jax.random.key(3)
  draw = jax.jit(lambda s: input_pipeline.epoch_shuffled_indices(
      key, jnp.int32(count), capacity, batch, s))
  indices = np.concatenate([np.asarray(draw(jnp.int32(s))) for s in range(13)])
  assert indices.max() < count
  epochs = indices[:count * 5].reshape(5, count)
  for e in epochs:
    assert sorted(e.tolist()) == list(range(count))
  assert not np.array_equal(epochs[0], epochs[1])  # reshuffled


def test_sampled_batches_are_the_same_under_vmap():
  """K classes' draws mapped at once equal each class's draw alone."""
  counts, capacity, batch = jnp.array([7, 13, 20]), 20, 5
  keys = jax.random.split(jax.random.key(4), 3)
  draw = lambda k, c, s: input_pipeline.epoch_shuffled_indices(
      k, c, capacity, batch, s)
  for s in range(9):
    mapped = jax.vmap(draw, in_axes=(0, 0, None))(keys, counts, jnp.int32(s))
    for k in range(3):
      np.testing.assert_array_equal(mapped[k],
                                    draw(keys[k], counts[k], jnp.int32(s)))


def test_unequal_classes_and_missing_class():
  labels = np.array([0, 0, 0, 1, 2, 2])
  images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)
  data = input_pipeline.group_by_class(images, labels, 3)
  assert data.counts.tolist() == [3, 1, 2]
  assert data.images[1, 0, 0, 0, 0] == 3
  with pytest.raises(DatasetError, match=r"no images of class\(es\) \[3\]"):
    input_pipeline.group_by_class(images, labels, 4)
  with pytest.raises(DatasetError, match="smallest class"):
    input_pipeline.check_batch_size(data.counts, 2, "toy")


def test_images_are_scaled_to_the_generator_range():
  x = input_pipeline.to_float(jnp.array([0, 255], jnp.uint8))
  np.testing.assert_allclose(x, [-1.0, 1.0])
  np.testing.assert_array_equal(input_pipeline.to_uint8(x), [0, 255])


def test_fit_images_resizes_and_converts_channels():
  images = np.full((2, 16, 16, 1), 200, np.uint8)
  out = input_pipeline.fit_images(images, 8, 3)
  assert out.shape == (2, 8, 8, 3)
  assert np.all(out == 200)


def test_bundled_digits_read_through_tfds(tiny_config):
  images, labels = input_pipeline.load_split(tiny_config.data, "test")
  assert images.shape == (360, 8, 8, 1)
  assert images.max() == 255 and images.min() == 0
  assert sorted(set(labels.tolist())) == list(range(10))


def test_in_batches_pads_the_last_batch_and_keeps_order():
  images = np.arange(7 * 2, dtype=np.uint8).reshape(7, 2)
  shapes = []
  out = input_pipeline.in_batches(
      lambda x: shapes.append(x.shape) or x.sum(1), images, 3)
  assert shapes == [(3, 2)] * 3  # one shape: one compilation
  np.testing.assert_array_equal(out, images.sum(1))
