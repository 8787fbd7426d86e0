"""The ablation: which small-data GAN techniques make the synthetic images useful.

  python -m gansynth.scoring.ablation --config configs/quickstart.py --workdir /tmp/ablation

Trains the config's GAN recipe, the recipe with each of its techniques turned
off in turn, and the plain GAN with all of them off, each in its own workdir
(`<workdir>/<variant>`, resumable like any run). Each variant's GAN images are
scored as the evaluate stage scores them: the CAS (a classifier trained on the
GAN images, tested on real ones) as mean ± std over `evaluation.seeds`, and
the Fréchet distance and recall against real training images, per class, in
the feature space of one classifier trained on real data. Writes
`<workdir>/ablation.md` and `ablation.json`.

Tune on a validation slice carved from the training split
(`--config.data.test_split=train[...]`), not on the test split.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging

from gansynth import paths
from gansynth.scoring import results

# What turning each technique off means: config.gan fields and their values.
TECHNIQUES = {
    "diffaugment": {"diffaugment": ""},
    "ema": {"ema_decay": 0.0},
    "spectral_norm": {"spectral_norm": False},
    "r1": {"r1_gamma": 0.0},
    "mbstd": {"mbstd": False},
    "n_critic": {"n_critic": 1},
    "hinge": {"loss": "bce"},
}


def techniques_on(gan_config) -> list[str]:
  """The techniques the recipe uses (those whose off-value differs)."""
  return [t for t, off in TECHNIQUES.items()
          if any(gan_config[f] != v for f, v in off.items())]


def variants(config) -> dict[str, dict[str, Any]]:
  """{name: config.gan overrides}: the recipe, each technique off, none."""
  on = techniques_on(config.gan)
  out = {"recipe": {}}
  out.update({f"no_{t}": dict(TECHNIQUES[t]) for t in on})
  if len(on) > 1:
    out["none"] = {f: v for t in on for f, v in TECHNIQUES[t].items()}
  return out


def variant_config(config, overrides: dict[str, Any]):
  c = copy.deepcopy(config)
  with c.unlocked():
    for field, value in overrides.items():
      c.gan[field] = value
    c.stages = "train_gan,synthesize"
    c.classifier.sources = "real,gan"
  return c


def run(config, workdir: str) -> dict[str, Any]:
  """Trains and scores every variant; writes ablation.md/json."""
  # Heavy imports here (after set_up), so that --help stays fast.
  # pylint: disable=g-import-not-at-top
  from gansynth import pipeline
  pipeline.set_up(config)
  from gansynth.classifier import classifier_train
  from gansynth.data import input_pipeline
  from gansynth.scoring import evaluation
  os.makedirs(workdir, exist_ok=True)
  seeds = list(range(config.evaluation.seeds))
  test = input_pipeline.load_split(config.data, config.data.test_split)
  real = input_pipeline.load_split(config.data, config.data.train_split)
  real_params = classifier_train.train(config, workdir, "real", *real,
                                       0).params
  rows = {}
  for name, overrides in variants(config).items():
    t0 = time.time()
    c = variant_config(config, overrides)
    sub = paths.ablation_variant(workdir, name)
    logging.info("ablation: variant %s (%s)", name, overrides or "recipe")
    pipeline.run(c, sub)
    gan = classifier_train.load_source(c, sub, "gan")
    cas = evaluation.score_seeds(c, sub, "gan", lambda _: gan, seeds, test)
    dist = evaluation.distances(c, real_params, real, {"gan": gan})
    d = dist["sets"]["gan"]
    rows[name] = {
        "overrides": overrides,
        "techniques": techniques_on(c.gan),
        "cas_mean": cas["accuracy_mean"], "cas_std": cas["accuracy_std"],
        "cas_per_class": cas["per_class_accuracy_mean"],
        "frechet": d["overall"]["frechet"], "recall": d["overall"]["recall"],
        "precision": d["overall"]["precision"],
        "frechet_per_class": [r["frechet"] for r in d["per_class"]],
        "recall_per_class": [r["recall"] for r in d["per_class"]],
        "seconds": round(time.time() - t0, 1),
        "gan_train_seconds": _stage_seconds(sub, "train_gan")}
    write(workdir, config, rows, seeds)  # after each variant: partial results
  return rows


def _stage_seconds(workdir: str, stage: str):
  """Seconds of `stage` in the newest invocation that ran it (timings.json)."""
  try:
    with open(paths.timings_file(workdir)) as f:
      entries = json.load(f)
  except (OSError, ValueError):
    return None
  for entry in reversed(entries):
    if stage in entry.get("seconds", {}):
      return entry["seconds"][stage]
  return None


def markdown(config, rows: dict[str, Any], seeds: list[int]) -> str:
  lines = [
      f"# Ablation: {config.data.name}", "",
      f"GAN-only CAS: a classifier trained on each variant's "
      f"{config.synthesis.num_per_class:,} images per class, tested on the "
      f"real `{config.data.name}[{config.data.test_split}]`; mean ± std over "
      f"classifier seeds {seeds} (%). Fréchet distance and recall against the "
      "real training images in the features of a classifier trained on real "
      "data (lower Fréchet, higher recall is better).", "",
      "| variant | techniques on | CAS (%) | Fréchet | recall | GAN training (s) |",
      "| --- | --- | ---: | ---: | ---: | ---: |"]
  for name, r in rows.items():
    t = r["gan_train_seconds"]
    lines.append(
        f"| {name} | {', '.join(r['techniques']) or '-'} | "
        f"{100 * r['cas_mean']:.1f} ± {100 * r['cas_std']:.1f} | "
        f"{r['frechet']:.2f} | {r['recall']:.2f} | "
        f"{'' if t is None else f'{t:.0f}'} |")
  for metric, cell in (("cas_per_class", results.percent),
                       ("frechet_per_class", lambda v: f"{v:.2f}"),
                       ("recall_per_class", lambda v: f"{v:.2f}")):
    lines += ["", f"Per class, {metric.replace('_per_class', '')}:", ""]
    lines += results.class_table(
        "variant", {n: r[metric] for n, r in rows.items()}, cell)
  return "\n".join(lines) + "\n"


def write(workdir: str, config, rows: dict[str, Any],
          seeds: list[int]) -> None:
  with open(paths.ablation_json(workdir), "w") as f:
    json.dump({"dataset": config.data.name,
               "test_split": config.data.test_split, "seeds": seeds,
               "rows": rows}, f, indent=2)
  with open(paths.ablation_md(workdir), "w") as f:
    f.write(markdown(config, rows, seeds))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  rows = run(flags.FLAGS.config, flags.FLAGS.workdir)
  print(f"ablation: {len(rows)} variants, table in "
        f"{paths.ablation_md(flags.FLAGS.workdir)}")


if __name__ == "__main__":
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Directory for the variants' runs.")
  config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                  lock_config=True)
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
