"""Synthesis stage: stored generators -> a labelled tfds data set on disk.

Reads the newest GAN checkpoint from the store (never the training run's
memory), draws `config.synthesis.num_per_class` images from each class GAN
and writes them as the tfds data set `<workdir>/synthetic/gan`, which the
classifier stage reads exactly like real data. A PNG grid shows each class.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from absl import logging
import jax
import numpy as np

from gansynth import gan_train
from gansynth import image_datasets
from gansynth import image_grid
from gansynth import input_pipeline
from gansynth import store


def synthetic_root(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "synthetic")


def source_dir(workdir: str, source: str) -> str:
  """Where the synthetic source `source` (e.g. "gan") is stored."""
  return image_datasets.dataset_dir(synthetic_root(workdir), source)


def load_generators(config, workdir: str) -> gan_train.GANState:
  mngr = store.manager(store.gan_dir(workdir))
  abstract = store.abstract(jax.eval_shape(
      lambda: gan_train.create_state(config, jax.random.key(0))))
  state = store.restore_latest(mngr, abstract, gan_train.store_meta(config))
  if state is None:
    raise store.CheckpointError(
        f"no GAN checkpoint in {store.gan_dir(workdir)}: run the train_gan "
        "stage first (--config.stages=train_gan,synthesize)")
  return state


def generate(config, state: gan_train.GANState, num_per_class: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
  """num_per_class uint8 images from each GAN, class k labelled k."""
  sampler = gan_train.make_sampler(config)
  k = gan_train.num_gans(config)
  batch = min(config.synthesis.batch_size, num_per_class)
  key = jax.random.fold_in(jax.random.key(seed), 11)
  chunks = []
  for i, start in enumerate(range(0, num_per_class, batch)):
    n = min(batch, num_per_class - start)
    z = jax.random.normal(jax.random.fold_in(key, i),
                          (k, batch, config.gan.latent_dim))
    chunks.append(input_pipeline.to_uint8(sampler(state.gans, z))[:, :n])
  images = np.concatenate(chunks, axis=1)  # [K, N, H, W, C]
  labels = np.repeat(np.arange(k, dtype=np.int32), num_per_class)
  return images.reshape((-1,) + images.shape[2:]), labels


def synthesize(config, workdir: str) -> str:
  """Writes (or keeps, if already made from the same checkpoint) the GAN set."""
  state = load_generators(config, workdir)
  directory = source_dir(workdir, "gan")
  stamp_path = os.path.join(synthetic_root(workdir), "gan.json")
  stamp = {"gan_step": int(state.step),
           "num_per_class": config.synthesis.num_per_class,
           "seed": config.seed}
  if os.path.exists(stamp_path) and os.path.isdir(directory):
    with open(stamp_path) as f:
      if json.load(f) == stamp:
        logging.info("synthesis: %s is up to date, kept", directory)
        return directory
  t0 = time.time()
  images, labels = generate(config, state, config.synthesis.num_per_class,
                            config.seed)
  t1 = time.time()
  logging.info("synthesis: %d images from %d GANs in %.1fs", len(images),
               gan_train.num_gans(config), t1 - t0)
  if os.path.exists(directory):
    shutil.rmtree(directory)
  if os.path.exists(stamp_path):
    os.remove(stamp_path)
  num_classes = (config.data.num_classes if config.gan.per_class else 1)
  image_datasets.write_image_dataset(
      synthetic_root(workdir), "gan", {"train": (images, labels)},
      num_classes, description=f"GAN images, checkpoint step {state.step}")
  with open(stamp_path, "w") as f:
    json.dump(stamp, f)
  logging.info("synthesis: wrote %s in %.1fs", directory, time.time() - t1)
  image_grid.save_grid(
      os.path.join(workdir, "samples", "gan_synthetic.png"),
      image_grid.per_class_grid(images, labels, num_classes,
                                config.gan.grid_per_class))
  return directory
