"""Synthesis stage: synthetic sources -> labelled tfds data sets on disk.

`gan`: reads the newest GAN checkpoint from the store (never the training
run's memory), draws `config.synthesis.num_per_class` images from each class
GAN. `procedural`: the digit renderer (procedural.py). Each is written by
sources.store_source as the tfds data set `<workdir>/synthetic/<source>`,
which the classifier stage reads exactly like real data.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import numpy as np

from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.gan import gan_train
from gansynth.runtime import progress
from gansynth.sim import procedural


def with_ema(config, ema: bool) -> ml_collections.ConfigDict:
  """A copy of `config` whose sampler uses (or not) the EMA generator."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.synthesis.use_ema = bool(ema)
  return config


def generate(config, state: gan_train.TrainState, num_per_class: int,
             seed: int, nets=None) -> tuple[np.ndarray, np.ndarray]:
  """num_per_class uint8 images of each class (from its GAN, or from the
  conditional GAN given label k), class k labelled k.

  With `synthesis.keep_fraction` below 1, each class draws num_per_class /
  keep_fraction images and keeps the num_per_class its discriminator scores
  most real, in the order drawn: a deterministic form of discriminator
  rejection sampling (Azadi et al. 2019) that drops the samples the GAN's
  own D finds least like the class's real images.

  The latents are z ~ N(0, t^2) with t = `synthesis.temperature`: below 1
  trades diversity for fidelity (as truncation does, Brock et al. 2019),
  above 1 the other way.
  """
  sampler = gan_train.make_sampler(config, nets)
  keep = config.synthesis.keep_fraction
  scorer = gan_train.make_scorer(config, nets) if keep < 1 else None
  drawn = num_per_class if scorer is None else math.ceil(num_per_class / keep)
  k = gan_train.num_rows(config)
  batch = min(config.synthesis.batch_size, drawn)
  key = jax.random.fold_in(jax.random.key(seed), 11)
  gans = state.gans
  if config.synthesis.standing_stats:
    gans = gan_train.standing_stats(
        config, gans, jax.random.fold_in(jax.random.key(seed), 13),
        config.synthesis.standing_stats, nets)
  chunks, scores = [], []
  bar = progress.bar(k * drawn, "synthesis", unit="img")
  for i, start in enumerate(range(0, drawn, batch)):
    n = min(batch, drawn - start)
    z = config.synthesis.temperature * jax.random.normal(
        jax.random.fold_in(key, i), (k, batch, config.gan.latent_dim))
    images = input_pipeline.to_uint8(sampler(gans, z))
    chunks.append(images[:, :n])
    if scorer is not None:  # D scores the stored (uint8) images
      scores.append(np.asarray(
          scorer(gans, input_pipeline.to_float(images)))[:, :n])
    bar.update(k * n)
  bar.close()
  images = np.concatenate(chunks, axis=1)  # [K, drawn, H, W, C]
  if scorer is not None:
    best = np.argsort(-np.concatenate(scores, axis=1), axis=1, kind="stable")
    kept = np.sort(best[:, :num_per_class], axis=1)
    images = np.take_along_axis(images, kept[:, :, None, None, None], axis=1)
  labels = np.repeat(np.arange(k, dtype=np.int32), num_per_class)
  return images.reshape((-1,) + images.shape[2:]), labels


def synthesize(config, workdir: str,
               checkpoint: dict[str, Any] | None = None) -> str:
  """Writes (or keeps, if made from the same checkpoint) the GAN source.

  `checkpoint` ({"step", "ema"}, from selection.choose) picks the stored
  step and whether its EMA generator is used; None: the newest step, with
  EMA as `config.synthesis.use_ema` says.
  """
  nets = gan_train.make_nets(config)
  step = None if checkpoint is None else checkpoint["step"]
  state = gan_train.restore_trained(config, workdir, nets, step)
  if checkpoint is not None:
    config = with_ema(config, checkpoint["ema"])
  stamp = {"gan_step": int(state.step),
           "num_per_class": config.synthesis.num_per_class,
           "seed": config.seed, "ema": gan_train.uses_ema(config),
           "standing_stats": config.synthesis.standing_stats}
  if config.synthesis.keep_fraction < 1:
    stamp["keep_fraction"] = config.synthesis.keep_fraction
  if config.synthesis.temperature != 1:
    stamp["temperature"] = config.synthesis.temperature
  return sources.store_source(
      workdir, "gan", stamp,
      lambda: generate(config, state, config.synthesis.num_per_class,
                       config.seed, nets),
      gan_train.num_rows(config), config.gan.grid_per_class)


def render_procedural(config, workdir: str) -> str:
  """Writes (or keeps) the procedural source, rendered at the data's shape."""
  shape = (config.data.image_size, config.data.image_size,
           config.data.channels)
  cfg = config.procedural
  stamp = {"num_per_class": cfg.num_per_class, "seed": config.seed,
           "shape": shape, "render": cfg.render.to_dict(),
           "fonts_used": procedural.font_record(cfg.render)}
  return sources.store_source(
      workdir, "procedural", stamp,
      lambda: procedural.render_dataset(
          cfg.num_per_class, shape, cfg.render, config.seed,
          num_workers=cfg.workers, num_classes=config.data.num_classes),
      config.data.num_classes, config.gan.grid_per_class)
