"""Which stored GAN checkpoint to synthesize from, chosen by validation CAS.

The newest checkpoint is not always the best one: a GAN can drift or
collapse late, and the EMA generator can be better or worse than the raw
one. With `config.synthesis.select`, every stored step (each with and without
EMA, when the GANs keep one) draws `select_per_class` images per class; a
short classifier (`select_steps`, the classifier recipe otherwise) trains on
them and is scored on the real images of `select_split`. The best candidate
is the one synthesis uses. The split is a slice carved from the training
data (say `train[50000:55000]`, with the GANs trained on `train[:50000]`);
`config_schema.validate` refuses the test split, which must stay unseen.

The scores are written to `<workdir>/selection.json`; a rerun over the same
checkpoints and settings reads them back instead of scoring again.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import jax
import numpy as np

from gansynth import paths
from gansynth.classifier import classifier_train
from gansynth.data import input_pipeline
from gansynth.gan import gan_train
from gansynth.gan import synthesis
from gansynth.runtime import store


def candidates(config, steps: list[int]) -> list[dict[str, Any]]:
  """Every stored step, with and without the EMA generator if there is one."""
  emas = (True, False) if config.gan.ema_decay > 0 else (False,)
  return [{"step": int(s), "ema": e} for s in sorted(steps) for e in emas]


def settings(config) -> dict[str, Any]:
  """What a candidate's score depends on besides its checkpoint."""
  s = config.synthesis
  return {"split": s.select_split, "per_class": s.select_per_class,
          "steps": s.select_steps, "seed": config.seed,
          "classifier": repr(sorted(
              (k, config.classifier[k]) for k in classifier_train.RECIPE))}


def validation_accuracy(config, images: np.ndarray, labels: np.ndarray,
                        val: tuple[np.ndarray, np.ndarray]) -> float:
  """Accuracy on `val` of a classifier trained `select_steps` on the images
  (in memory: candidates' classifiers are not stored)."""
  steps = config.synthesis.select_steps
  state = classifier_train.create_state(
      config, jax.random.key(config.classifier.seed), steps)
  chunk = classifier_train.make_train_chunk(config, steps)
  state, _ = chunk(state, *jax.device_put((images, labels)), steps)
  predictions = classifier_train.predict(config, state.params, val[0])
  return float(np.mean(predictions == val[1]))


def choose(config, workdir: str) -> dict[str, Any]:
  """The best candidate, {"step": int, "ema": bool}, scored (or read back)."""
  mngr = store.manager(paths.gan_checkpoints(workdir))
  options = candidates(config, mngr.all_steps())
  if not options:
    raise store.CheckpointError(
        f"no GAN checkpoint in {paths.gan_checkpoints(workdir)}: run the "
        "train_gan stage first (--config.stages=train_gan,synthesize)")
  path = paths.selection_scores(workdir)
  report = {"settings": settings(config), "candidates": []}
  try:
    with open(path) as f:
      stored = json.load(f)
    if (stored["settings"] == report["settings"] and
        [{"step": c["step"], "ema": c["ema"]} for c in stored["candidates"]]
        == options):
      logging.info("selection: scores of %d checkpoints read from %s",
                   len(options), path)
      return stored["best"]
  except (OSError, ValueError, KeyError, TypeError):
    pass
  val = input_pipeline.load_split(config.data, config.synthesis.select_split)
  nets = gan_train.make_nets(config)
  state, loaded_step = None, None
  for option in options:
    if option["step"] != loaded_step:
      state = gan_train.restore(config, mngr, option["step"], nets=nets)
      loaded_step = option["step"]
    cfg = synthesis.with_ema(config, option["ema"])
    images, labels = synthesis.generate(
        cfg, state, config.synthesis.select_per_class, config.seed, nets)
    accuracy = validation_accuracy(cfg, images, labels, val)
    report["candidates"].append(dict(option, accuracy=accuracy))
    logging.info("selection: step %d%s: validation accuracy %.2f%% on %s",
                 option["step"], " (EMA)" if option["ema"] else "",
                 100 * accuracy, config.synthesis.select_split)
  best = max(report["candidates"], key=lambda c: (c["accuracy"], c["step"]))
  report["best"] = {"step": best["step"], "ema": best["ema"]}
  with open(path + ".tmp", "w") as f:
    json.dump(report, f, indent=2)
  os.replace(path + ".tmp", path)
  logging.info("selection: synthesizing from step %d%s (%.2f%%)", best["step"],
               " (EMA)" if best["ema"] else "", 100 * best["accuracy"])
  return report["best"]
