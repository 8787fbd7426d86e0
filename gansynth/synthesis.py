"""Synthesis stage: synthetic sources -> labelled tfds data sets on disk.

`gan`: reads the newest GAN checkpoint from the store (never the training
run's memory), draws `config.synthesis.num_per_class` images from each class
GAN. `procedural`: the digit renderer (procedural.py). Each is written as the
tfds data set `<workdir>/synthetic/<source>`, which the classifier stage
reads exactly like real data, with a PNG grid of each class.
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
from gansynth import procedural
from gansynth import progress
from gansynth import store


def synthetic_root(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "synthetic")


def source_dir(workdir: str, source: str) -> str:
  """Where the synthetic source `source` (e.g. "gan") is stored."""
  return image_datasets.dataset_dir(synthetic_root(workdir), source)


def load_generators(config, workdir: str) -> gan_train.GANState:
  mngr = store.manager(store.gan_dir(workdir))
  abstract = gan_train.abstract_state(config)
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
  bar = progress.bar(k * num_per_class, "synthesis", unit="img")
  for i, start in enumerate(range(0, num_per_class, batch)):
    n = min(batch, num_per_class - start)
    z = jax.random.normal(jax.random.fold_in(key, i),
                          (k, batch, config.gan.latent_dim))
    chunks.append(input_pipeline.to_uint8(sampler(state.gans, z))[:, :n])
    bar.update(k * n)
  bar.close()
  images = np.concatenate(chunks, axis=1)  # [K, N, H, W, C]
  labels = np.repeat(np.arange(k, dtype=np.int32), num_per_class)
  return images.reshape((-1,) + images.shape[2:]), labels


def store_source(workdir: str, source: str, stamp: dict, produce,
                 num_classes: int, grid_per_class: int) -> str:
  """Writes synthetic source `source` unless one made the same way exists.

  `stamp` says how the source is made (checkpoint step, counts, seeds,
  settings); `produce()` returns (uint8 images, labels). A source whose stored
  stamp equals `stamp` is kept, so reruns never regenerate it.
  """
  directory = source_dir(workdir, source)
  stamp_path = os.path.join(synthetic_root(workdir), f"{source}.json")
  stamp = json.loads(json.dumps(stamp))  # as it reads back from JSON
  if os.path.exists(stamp_path) and os.path.isdir(directory):
    with open(stamp_path) as f:
      if json.load(f) == stamp:
        logging.info("%s: %s is up to date, kept", source, directory)
        return directory
  t0 = time.time()
  images, labels = produce()
  t1 = time.time()
  logging.info("%s: made %d images in %.1fs", source, len(images), t1 - t0)
  if os.path.exists(stamp_path):
    os.remove(stamp_path)
  if os.path.exists(directory):
    shutil.rmtree(directory)
  image_datasets.write_image_dataset(
      synthetic_root(workdir), source, {"train": (images, labels)},
      num_classes, description=json.dumps(stamp))
  with open(stamp_path, "w") as f:
    json.dump(stamp, f)
  logging.info("%s: wrote %s in %.1fs", source, directory, time.time() - t1)
  image_grid.save_grid(
      os.path.join(workdir, "samples", f"{source}_synthetic.png"),
      image_grid.per_class_grid(images, labels, num_classes, grid_per_class))
  return directory


def synthesize(config, workdir: str) -> str:
  """Writes (or keeps, if made from the same checkpoint) the GAN source."""
  state = load_generators(config, workdir)
  stamp = {"gan_step": int(state.step),
           "num_per_class": config.synthesis.num_per_class,
           "seed": config.seed}
  return store_source(
      workdir, "gan", stamp,
      lambda: generate(config, state, config.synthesis.num_per_class,
                       config.seed),
      gan_train.num_gans(config), config.gan.grid_per_class)


def render_procedural(config, workdir: str) -> str:
  """Writes (or keeps) the procedural source, rendered at the data's shape."""
  shape = (config.data.image_size, config.data.image_size,
           config.data.channels)
  cfg = config.procedural
  stamp = {"num_per_class": cfg.num_per_class, "seed": config.seed,
           "shape": shape, "render": cfg.render.to_dict(),
           "fonts_used": procedural.font_record(cfg.render)}
  return store_source(
      workdir, "procedural", stamp,
      lambda: procedural.render_dataset(
          cfg.num_per_class, shape, cfg.render, config.seed,
          num_workers=cfg.workers, num_classes=config.data.num_classes),
      config.data.num_classes, config.gan.grid_per_class)
