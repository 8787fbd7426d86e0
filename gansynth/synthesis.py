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
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from gansynth import gan_train
from gansynth import image_datasets
from gansynth import image_grid
from gansynth import input_pipeline
from gansynth import paths
from gansynth import procedural
from gansynth import progress
from gansynth import store


# Where sources live (gansynth/paths.py), under the names callers use.
synthetic_root = paths.synthetic_root
source_dir = paths.source_dir
stamp_path = paths.source_stamp


def load_generators(config, workdir: str,
                    step: int | None = None) -> gan_train.GANState:
  """The newest usable GAN checkpoint, or the one of `step`."""
  mngr = store.manager(paths.gan_checkpoints(workdir))
  if step is not None:
    return store.restore_step(mngr, step, gan_train.abstract_state(config),
                              gan_train.store_meta(config),
                              check=gan_train.nonfinite_restored)
  state = gan_train.restore_latest(config, mngr)
  if state is None:
    raise store.CheckpointError(
        f"no GAN checkpoint in {paths.gan_checkpoints(workdir)}: run the "
        "train_gan stage first (--config.stages=train_gan,synthesize)")
  return state


def with_ema(config, ema: bool) -> ml_collections.ConfigDict:
  """A copy of `config` whose sampler uses (or not) the EMA generator."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.synthesis.use_ema = bool(ema)
  return config


def generate(config, state: gan_train.GANState, num_per_class: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
  """num_per_class uint8 images of each class (from its GAN, or from the
  conditional GAN given label k), class k labelled k."""
  sampler = gan_train.make_sampler(config)
  k = gan_train.num_rows(config)
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


DIGEST = "digest"  # stamp key: {"arrays": crc32, "files": {path: crc32}}


def read_stamp(workdir: str, source: str) -> dict | None:
  """The stored stamp of `source` (with its digest), None if absent or
  unreadable."""
  try:
    with open(stamp_path(workdir, source)) as f:
      stamp = json.load(f)
  except (OSError, ValueError):
    return None
  return stamp if isinstance(stamp, dict) else None


def unverified(directory: str, stored: dict) -> str | None:
  """Why the files of a stored source do not match its stamp, or None."""
  digest = stored.get(DIGEST)
  if not isinstance(digest, dict) or "files" not in digest:
    return "its stamp has no digest (written by an older gansynth)"
  actual = image_datasets.files_digest(directory)
  for name in sorted(set(actual) | set(digest["files"])):
    if actual.get(name) != digest["files"].get(name):
      what = "is missing" if name not in actual else (
          "is not in its stamp" if name not in digest["files"] else
          "does not match its digest")
      return f"file {name} {what}"
  return None


def store_source(workdir: str, source: str, stamp: dict, produce,
                 num_classes: int, grid_per_class: int) -> str:
  """Writes synthetic source `source` unless one made the same way exists.

  `stamp` says how the source is made (checkpoint step, counts, seeds,
  settings); `produce()` returns (uint8 images, labels). The stored stamp
  adds digests of the images and labels and of every file written. A source
  whose stamp equals `stamp` and whose files match their digests is kept, so
  reruns never regenerate it; a damaged one is regenerated.
  """
  directory = source_dir(workdir, source)
  path = stamp_path(workdir, source)
  stamp = json.loads(json.dumps(stamp))  # as it reads back from JSON
  stored = read_stamp(workdir, source)
  if stored is not None and os.path.isdir(directory) and {
      k: v for k, v in stored.items() if k != DIGEST} == stamp:
    problem = unverified(directory, stored)
    if problem is None:
      logging.info("%s: %s is up to date, kept (its files verify)", source,
                   directory)
      return directory
    logging.warning("%s: %s cannot be vouched for (%s); regenerating it",
                    source, directory, problem)
  t0 = time.time()
  images, labels = produce()
  t1 = time.time()
  logging.info("%s: made %d images in %.1fs", source, len(images), t1 - t0)
  if os.path.exists(path):
    os.remove(path)
  if os.path.exists(directory):
    shutil.rmtree(directory)
  image_datasets.write_image_dataset(
      synthetic_root(workdir), source, {"train": (images, labels)},
      num_classes, description=json.dumps(stamp))
  digest = {"arrays": image_datasets.arrays_digest(images, labels),
            "files": image_datasets.files_digest(directory)}
  with open(path + ".tmp", "w") as f:
    json.dump(dict(stamp, **{DIGEST: digest}), f)
  os.replace(path + ".tmp", path)  # a stamp is whole or absent
  logging.info("%s: wrote %s in %.1fs", source, directory, time.time() - t1)
  image_grid.save_grid(
      paths.synthetic_samples(workdir, source),
      image_grid.per_class_grid(images, labels, num_classes, grid_per_class))
  return directory


def load_verified(workdir: str, source: str) -> tuple[np.ndarray, np.ndarray]:
  """A synthetic source's images and labels, only if they match the digest
  its stamp recorded when it was written (else a one-line DatasetError)."""
  directory = source_dir(workdir, source)
  remedy = ("Rerun with --config.stages=synthesize (plus the later stages) "
            "to regenerate it.")
  images, labels = image_datasets.load_written(directory, "train", remedy)
  stored = read_stamp(workdir, source) or {}
  digest = stored.get(DIGEST)
  expected = digest.get("arrays") if isinstance(digest, dict) else None
  if expected is None:
    raise image_datasets.DatasetError(
        f"synthetic set {source!r} at {directory} has no digest in "
        f"{stamp_path(workdir, source)}, so it cannot be vouched for. "
        f"{remedy}")
  if image_datasets.arrays_digest(images, labels) != expected:
    raise image_datasets.DatasetError(
        f"synthetic set {source!r} at {directory} does not match the digest "
        f"recorded when it was written (damaged). {remedy}")
  return images, labels


def synthesize(config, workdir: str,
               checkpoint: dict[str, Any] | None = None) -> str:
  """Writes (or keeps, if made from the same checkpoint) the GAN source.

  `checkpoint` ({"step", "ema"}, from selection.choose) picks the stored
  step and whether its EMA generator is used; None: the newest step, with
  EMA as `config.synthesis.use_ema` says.
  """
  step = None if checkpoint is None else checkpoint["step"]
  state = load_generators(config, workdir, step)
  stamp = {"gan_step": int(state.step),
           "num_per_class": config.synthesis.num_per_class,
           "seed": config.seed}
  if checkpoint is not None:
    config = with_ema(config, checkpoint["ema"])
    stamp["ema"] = gan_train.uses_ema(config)
  return store_source(
      workdir, "gan", stamp,
      lambda: generate(config, state, config.synthesis.num_per_class,
                       config.seed),
      gan_train.num_rows(config), config.gan.grid_per_class)


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
