"""Classifier stage: train on a source (real or synthetic), test on real.

Every source gets the same classifier, optimizer, steps and batch size; only
the training images differ, so the test accuracies compare the sources
(the Classification Accuracy Score of Ravuri & Vinyals 2019). Finished
classifiers are stored in the Orbax store and not retrained on a rerun.
"""

from __future__ import annotations

import functools
import hashlib
import time
from typing import Any

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gansynth import models
from gansynth import paths
from gansynth.data import image_datasets
from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.gan import augment
from gansynth.gan import train_loop
from gansynth.runtime import metrics_log
from gansynth.runtime import progress
from gansynth.runtime import store


@flax.struct.dataclass
class ClassifierState:
  step: jax.Array
  params: Any
  opt: Any
  rng: jax.Array  # raw uint32 key data


def load_source(config, workdir: str,
                source: str) -> tuple[np.ndarray, np.ndarray]:
  """Training images of a source: `real`, or a synthetic set in the workdir
  (verified against the digest recorded when it was written)."""
  if source == "real":
    return input_pipeline.load_split(config.data, config.data.train_split)
  images, labels = sources.load_verified(workdir, source)
  return input_pipeline.fit_images(images, config.data.image_size,
                                   config.data.channels), labels


def num_steps(cfg, num_real: int) -> int:
  """Steps of every source: `epochs` passes over the real training set
  (`num_real` images), or `train_steps` when epochs is 0. Every source, real
  or synthetic and whatever its size, gets the same steps and schedule."""
  if cfg.epochs > 0:
    return max(1, -(-int(cfg.epochs * num_real) // cfg.batch_size))
  return cfg.train_steps


def real_train_size(data_config) -> int:
  """Images in the real training split (tfds' split info, slices too)."""
  builder = input_pipeline.open_builder(data_config)
  return builder.info.splits[data_config.train_split].num_examples


def learning_rate(cfg, total_steps: int) -> optax.Schedule:
  """Constant, or linear warm-up then cosine decay to 0 over the run."""
  if cfg.schedule == "cosine":
    warmup = int(cfg.warmup_fraction * total_steps)
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, warmup, max(total_steps, warmup + 1))
  return optax.constant_schedule(cfg.learning_rate)


def optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
  return optax.adam(learning_rate(cfg, total_steps))


def create_state(config, key: jax.Array,
                 total_steps: int | None = None) -> ClassifierState:
  model = models.make_classifier(config.classifier, config.data.num_classes)
  shape = (1, config.data.image_size, config.data.image_size,
           config.data.channels)
  k_init, k_rng = jax.random.split(key)
  params = model.init(k_init, jnp.zeros(shape))["params"]
  return ClassifierState(step=jnp.zeros((), jnp.int32), params=params,
                         opt=optimizer(config.classifier, total_steps or
                                       config.classifier.train_steps
                                       ).init(params),
                         rng=jax.random.key_data(k_rng))


def train_step(state: ClassifierState, images: jax.Array, labels: jax.Array,
               *, model, tx, batch_size: int, shift: int = 0,
               flip: bool = False, label_smoothing: float = 0.0):
  """One Adam step on a batch drawn from the epoch-shuffled training set,
  each image shifted by up to `shift` pixels (edges repeated) and, with
  `flip`, mirrored left-right at random; the targets are one-hot labels
  smoothed by `label_smoothing` (Szegedy et al. 2016)."""
  key = jax.random.wrap_key_data(state.rng)
  n = labels.shape[0]
  idx = input_pipeline.epoch_shuffled_indices(key, jnp.int32(n), n,
                                              batch_size, state.step)
  x, y = input_pipeline.to_float(images[idx]), labels[idx]
  x = augment.random_shift(
      jax.random.fold_in(jax.random.fold_in(key, 1), state.step), x, shift,
      mode="edge")
  if flip:
    x = augment.random_flip(
        jax.random.fold_in(jax.random.fold_in(key, 2), state.step), x)

  def loss_fn(params):
    logits = model.apply({"params": params}, x)
    if label_smoothing:
      targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]),
                                    label_smoothing)
      loss = optax.softmax_cross_entropy(logits, targets).mean()
    else:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == y)

  (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt = tx.update(grads, state.opt, state.params)
  return state.replace(step=state.step + 1,
                       params=optax.apply_updates(state.params, updates),
                       opt=opt), {"loss": loss, "accuracy": acc}


def make_train_chunk(config, total_steps: int | None = None):
  """The jitted chunk of classifier steps, shared by calls with equal settings
  (so evaluating many sources and seeds does not recompile for each)."""
  c = config.classifier
  recipe = tuple(sorted((k, c[k]) for k in RECIPE))
  return _train_chunk(config.data.num_classes, recipe,
                      total_steps or c.train_steps)


# The settings a training run depends on (beyond the data).
RECIPE = ("width", "learning_rate", "batch_size", "schedule",
          "warmup_fraction", "shift", "flip", "label_smoothing")


@functools.lru_cache(maxsize=8)
def _train_chunk(num_classes: int, recipe: tuple, total_steps: int):
  cfg = ml_collections.ConfigDict(dict(recipe))
  step = functools.partial(train_step,
                           model=models.make_classifier(cfg, num_classes),
                           tx=optimizer(cfg, total_steps),
                           batch_size=cfg.batch_size, shift=cfg.shift,
                           flip=cfg.flip,
                           label_smoothing=cfg.label_smoothing)
  return train_loop.repeat_step(step, {"loss": (), "accuracy": ()})


@functools.lru_cache(maxsize=8)
def _apply_fn(num_classes: int, width: int, features: bool):
  """The jitted classifier on uint8 images: labels, or penultimate-layer
  features with `features`."""
  model = models.make_classifier(
      ml_collections.ConfigDict({"width": width}), num_classes)

  def apply(params, x):
    logits, feats = model.apply({"params": params}, input_pipeline.to_float(x),
                                return_features=True)
    return feats if features else jnp.argmax(logits, -1)
  return jax.jit(apply)


def fingerprint(images: np.ndarray, labels: np.ndarray,
                recipe: str = "") -> str:
  """A short hash of a training set and recipe: a stored classifier is
  reused only for the very data and settings it was trained with (a
  re-synthesized source retrains)."""
  h = hashlib.sha1(np.ascontiguousarray(labels).tobytes())
  h.update(np.ascontiguousarray(images).tobytes())
  h.update(recipe.encode())
  return h.hexdigest()[:10]


def recipe_text(cfg, total_steps: int) -> str:
  """The recipe as text for `fingerprint` ("" for the original recipe, so
  classifiers stored before these settings existed are still found)."""
  if (cfg.schedule, cfg.shift, cfg.epochs, cfg.flip,
      cfg.label_smoothing) == ("constant", 0, 0, False, 0.0):
    return ""
  return repr(sorted((k, cfg[k]) for k in RECIPE
                     if k not in _ADDED_LATER or cfg[k] != _ADDED_LATER[k])
              ) + f"|{total_steps}"


# Settings added after classifiers were first stored, left out of the text at
# these defaults so that those classifiers are still found.
_ADDED_LATER = {"flip": False, "label_smoothing": 0.0}


def store_meta(config, source: str) -> dict[str, Any]:
  return {"source": source, "num_classes": config.data.num_classes,
          "image_size": config.data.image_size,
          "channels": config.data.channels, "width": config.classifier.width}


def train(config, workdir: str, source: str, images: np.ndarray,
          labels: np.ndarray, seed: int) -> ClassifierState:
  """Trains (or restores the finished) classifier for `source`."""
  total = num_steps(config.classifier, real_train_size(config.data)
                    if config.classifier.epochs else 0)
  if len(labels) < config.classifier.batch_size:
    raise image_datasets.DatasetError(
        f"source {source!r} has {len(labels)} images, fewer than "
        f"config.classifier.batch_size={config.classifier.batch_size}")
  mngr = store.manager(
      paths.classifier_checkpoints(workdir, source, seed, fingerprint(
          images, labels, recipe_text(config.classifier, total))),
      max_to_keep=1)
  state = create_state(config, jax.random.key(seed), total)
  restored = store.restore_latest(mngr, store.abstract(state),
                                  store_meta(config, source))
  state = state if restored is None else restored
  if int(state.step) >= total:
    logging.info("classifier[%s, seed %d]: finished checkpoint kept", source,
                 seed)
    return state
  chunk = make_train_chunk(config, total)
  images, labels = jax.device_put((images, labels))
  start = step = int(state.step)
  t0 = time.time()
  log_every = max(1, total // 5)
  # Loss and accuracy curves, one TensorBoard run per classifier.
  curves = metrics_log.writer(paths.classifier_logs(
      workdir, metrics_log.tag(source), seed))
  bar = progress.bar(total, f"classifier[{source}]", initial=start)
  while step < total:
    n = train_loop.next_chunk(step, total, [log_every])
    state, metrics = chunk(state, images, labels, n)
    step += n
    metrics = jax.device_get(metrics)
    bar.update(n)
    if not np.isfinite(metrics["loss"]):
      raise FloatingPointError(
          f"classifier[{source}] loss is not finite at step {step}; lower "
          "config.classifier.learning_rate")
    curves.write_scalars(step, {"classifier/loss": float(metrics["loss"]),
                                "classifier/train_accuracy":
                                float(metrics["accuracy"])})
    with progress.write_mode():
      logging.info("classifier[%s, seed %d] step %d/%d loss %.3f train acc "
                   "%.3f | %.0f img/s", source, seed, step, total,
                   metrics["loss"], metrics["accuracy"],
                   (step - start) * config.classifier.batch_size /
                   max(time.time() - t0, 1e-9))
  bar.close()
  curves.close()
  store.save(mngr, step, state, store_meta(config, source))
  return state


def predict(config, params, images: np.ndarray) -> np.ndarray:
  """Predicted labels for uint8 images."""
  apply = _apply_fn(config.data.num_classes, config.classifier.width, False)
  return input_pipeline.in_batches(lambda x: apply(params, x), images,
                                   config.classifier.eval_batch_size)


def features(config, params, images: np.ndarray) -> np.ndarray:
  """Penultimate-layer features for uint8 images (the evaluation's feature
  space)."""
  apply = _apply_fn(config.data.num_classes, config.classifier.width, True)
  return input_pipeline.in_batches(lambda x: apply(params, x), images,
                                   config.classifier.eval_batch_size)


def scores(predictions: np.ndarray, labels: np.ndarray,
           num_classes: int) -> dict[str, Any]:
  """Accuracy, per-class accuracy and the confusion matrix (rows = truth)."""
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, predictions), 1)
  per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
  return {"accuracy": float(np.mean(predictions == labels)),
          "per_class_accuracy": per_class.round(4).tolist(),
          "confusion": confusion.tolist()}
