"""Evaluation stage: how useful and how close to real are the synthetic images.

Reads only what earlier stages stored (GAN checkpoints, synthetic data sets,
gan_metrics.jsonl) and writes `<workdir>/report.md`, `<workdir>/report.json`
and figures under `<workdir>/report/`:
  * Classification Accuracy Score (`cas`): a classifier per source (real,
    gan, procedural), same settings, several seeds, tested on real images.
    The classify stage (`classify`) is the same score with one seed.
  * Low-data and augmentation sweep: stratified real subsets, alone and with
    GAN images added, so a reader sees how many real labels the GANs replace.
  * Fréchet distance and k-NN precision/recall of each synthetic set against
    real images, in the feature space of the classifier trained on real data.
  * Pictures: generators at every stored step, GAN training curves,
    confusion matrices, the low-data curves.
Every classifier goes through `classifier_train.train`, which restores a
finished one from the store, so a rerun trains nothing; no GAN is trained.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import time
from typing import Any, Callable

from absl import logging
import flax
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import tensorflow_datasets as tfds

from gansynth import config_schema
from gansynth import paths
from gansynth.classifier import classifier_train
from gansynth.data import input_pipeline
from gansynth.gan import gan_train
from gansynth.runtime import metrics_log
from gansynth.runtime import parallel
from gansynth.runtime import store
from gansynth.scoring import distribution_metrics
from gansynth.scoring import plots
from gansynth.scoring import results

FEATURE_SPACE = (
    "penultimate layer of the classifier trained on real data (seed 0), not "
    "Inception: distances compare sources within this project and are not "
    "comparable to published FID values")
Data = tuple[np.ndarray, np.ndarray]


# Data: stratified subsets and mixes.


def parse_floats(text: str) -> list[float]:
  return [float(s) for s in config_schema.split_list(text)]


def stratified_subset(labels: np.ndarray, fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
  """Sorted indices of round(fraction * n_k) (at least 1) images per class.

  Keeps each class's share of the data set. The draw only depends on the
  rng, not on `fraction`, so subsets from equal rngs are nested.
  """
  picked = []
  for k in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == k))
    picked.append(members[:max(1, round(fraction * len(members)))])
  return np.sort(np.concatenate(picked))


def fill_batch(data: Data, batch_size: int) -> Data:
  """Repeats a set smaller than one batch; the classifier needs a full batch."""
  images, labels = data
  reps = -(-batch_size // len(labels))
  return (np.concatenate([images] * reps),
          np.concatenate([labels] * reps)) if reps > 1 else data


def experiment_name(fraction: float, ratio: float) -> str:
  """"real0.1+gan1" etc.; all real images alone is the source "real"."""
  name = "real" if fraction == 1 else f"real{fraction:g}"
  return f"{name}+gan{ratio:g}" if ratio else name


def mix(real: Data, gan: Data, fraction: float, ratio: float, seed: int,
        base_seed: int) -> Data:
  """`fraction` of the real set plus ratio * len(real) GAN images.

  The real subset depends on (base_seed, seed) only, so "real0.1" and
  "real0.1+gan1" of one seed share their real images.
  """
  rng = np.random.default_rng([base_seed, seed, 0])
  idx = stratified_subset(real[1], fraction, rng)
  images, labels = [real[0][idx]], [real[1][idx]]
  if ratio:
    want = ratio * len(real[1])
    if want > len(gan[1]):
      logging.warning("evaluation: %d GAN images wanted, %d synthesized; "
                      "using all", want, len(gan[1]))
    idx = stratified_subset(gan[1], min(1.0, want / len(gan[1])),
                            np.random.default_rng([base_seed, seed, 1]))
    images.append(gan[0][idx])
    labels.append(gan[1][idx])
  return np.concatenate(images), np.concatenate(labels)


# Classifiers: train (or restore) per seed, score on real test images.


def score_seeds(config, workdir: str, name: str,
                make_data: Callable[[int], Data], seeds: list[int],
                test: Data) -> dict[str, Any]:
  """A classifier per seed trained on make_data(seed), scored on `test`.

  Accuracy mean/std over seeds, per-seed accuracies, the mean per-class
  accuracy and the seed-summed confusion matrix. A set smaller than one
  classifier batch is repeated to fill it.
  """
  k = config.data.num_classes
  accuracies, per_class, counts, class_counts = [], [], [], []
  confusion = np.zeros((k, k), np.int64)
  t0 = time.time()
  for seed in seeds:
    images, labels = make_data(seed)
    input_pipeline.check_labels(labels, k, name)
    counts.append(len(labels))
    class_counts.append(np.bincount(labels, minlength=k).tolist())
    state = classifier_train.train(
        config, workdir, name,
        *fill_batch((images, labels), config.classifier.batch_size), seed)
    scores = classifier_train.scores(
        classifier_train.predict(config, state.params, test[0]), test[1], k)
    accuracies.append(scores["accuracy"])
    per_class.append(scores["per_class_accuracy"])
    confusion += np.array(scores["confusion"])
  same = lambda xs: xs[0] if all(x == xs[0] for x in xs) else xs
  out = {"accuracy_mean": float(np.mean(accuracies)),
         "accuracy_std": float(np.std(accuracies, ddof=1)
                               if len(seeds) > 1 else 0.0),
         "accuracies": accuracies,
         "per_class_accuracy_mean": np.mean(per_class, 0).round(4).tolist(),
         "num_train_images": same(counts),
         "train_images_per_class": same(class_counts),
         "confusion": confusion.tolist(),
         "seconds": round(time.time() - t0, 1)}
  logging.info("CAS[%s]: test accuracy %.2f%% +- %.2f (%d seed(s), %s "
               "training images)", name, 100 * out["accuracy_mean"],
               100 * out["accuracy_std"], len(seeds), counts[0])
  return out


def cas(config, workdir: str, sources: list[str], seeds: list[int],
        test: Data, data: dict[str, Data] | None = None) -> dict[str, Any]:
  """The Classification Accuracy Score of each source: `score_seeds` of a
  classifier trained on it (images from `data`, else loaded from the
  workdir), tested on the real `test` images."""
  out = {}
  for source in sources:
    d = (data or {}).get(source)
    if d is None:
      d = classifier_train.load_source(config, workdir, source)
    out[source] = score_seeds(config, workdir, source, lambda _, d=d: d,
                              seeds, test)
  return out


def classify(config, workdir: str) -> dict[str, Any]:
  """The classify stage: the CAS of every source with the one classifier
  seed `config.classifier.seed`; writes results.json and results.md."""
  test = input_pipeline.load_split(config.data, config.data.test_split)
  scored = cas(config, workdir,
               config_schema.split_list(config.classifier.sources),
               [config.classifier.seed], test)
  out = results.summary(config, len(test[1]), scored)
  json_path, md_path = results.write(workdir, out)
  if parallel.is_primary():
    metrics_log.write_cas(workdir, out, config.classifier.train_steps)
  logging.info("results in %s (and %s):\n%s", os.path.basename(md_path),
               os.path.basename(json_path), results.markdown(out))
  return out


def low_data(config, workdir: str, real: Data, gan: Data, seeds: list[int],
             test: Data, scored: dict[str, Any]) -> dict[str, Any]:
  """Every (real fraction, GAN ratio) pair, ratio 0 meaning real only."""
  out = {}
  for fraction in parse_floats(config.evaluation.real_fractions):
    for ratio in [0.0] + parse_floats(config.evaluation.mix_ratios):
      name = experiment_name(fraction, ratio)
      if name in scored:  # "real": already scored as a source.
        result = scored[name]
      else:
        result = score_seeds(
            config, workdir, name,
            lambda s, f=fraction, r=ratio: mix(real, gan, f, r, s,
                                               config.seed), seeds, test)
      out[name] = {"real_fraction": fraction, "gan_ratio": ratio, **result}
  return out


# Features: distances between real and synthetic sets.


def distances(config, params, reference: Data,
              sets: dict[str, Data]) -> dict[str, Any]:
  """Each set against the real reference, overall and per class.

  All sets are subsampled (stratified) to one size n, since the Fréchet
  distance's bias depends on n; "real_test" (images the classifier never
  saw, like the synthetic ones) gives the value a perfect generator would get.
  """
  sizes = [len(reference[1])] + [len(d[1]) for d in sets.values()]
  n = min([config.evaluation.feature_samples] + sizes)
  k = config.evaluation.knn_k

  def sample(data, tag):
    rng = np.random.default_rng([config.seed, 2, tag])
    idx = stratified_subset(data[1], n / len(data[1]), rng)
    return (classifier_train.features(config, params, data[0][idx]),
            data[1][idx])

  ref_f, ref_y = sample(reference, 0)
  out = {"feature_space": FEATURE_SPACE, "num_samples": int(n), "knn_k": k,
         "sets": {}}
  for i, (name, data) in enumerate(sets.items()):
    f, y = sample(data, i + 1)
    per_class = [distribution_metrics.compare(ref_f[ref_y == c], f[y == c], k)
                 for c in range(config.data.num_classes)]
    out["sets"][name] = {"overall": distribution_metrics.compare(ref_f, f, k),
                         "per_class": per_class}
    logging.info("evaluation: %s vs real, Fréchet %.3f, precision %.3f, "
                 "recall %.3f", name, *out["sets"][name]["overall"].values())
  return out


# Pictures of the generators over training.


def samples_by_step(config, workdir: str) -> dict[int, np.ndarray]:
  """Fixed-noise samples uint8 [K, n, H, W, C] at init and every stored step.

  Step 0 is rebuilt from config.seed as training initialised it.
  """
  nets = gan_train.make_nets(config)
  sampler = gan_train.make_sampler(config, nets)
  noise = gan_train.fixed_noise(config, config.gan.grid_per_class)
  mngr = store.manager(paths.gan_checkpoints(workdir))
  states = {0: gan_train.create_state(config, jax.random.key(config.seed),
                                      nets)}
  for step in sorted(mngr.all_steps()):
    try:
      states[step] = gan_train.restore(config, mngr, step, nets=nets)
    except store.CorruptCheckpoint as e:
      logging.warning("%s; left out of the pictures", e)
  return {s: input_pipeline.to_uint8(sampler(st.gans, noise))
          for s, st in states.items()}


def gan_pictures(config, workdir: str,
                 class_names: list[str]) -> tuple[list[int], dict[str, Any]]:
  """The stored steps, per-class grids over those steps, training curves."""
  report_dir = paths.report_dir(workdir)
  by_step = samples_by_step(config, workdir)
  steps = sorted(by_step)
  stacked = np.stack([by_step[s] for s in steps], 1)  # [K, S, n, H, W, C]
  figures = {"gan_over_steps": plots.labelled_grid(
      stacked[:, :, 0], class_names, [str(s) for s in steps],
      "first fixed-noise sample per class, by GAN step",
      os.path.join(report_dir, "gan_over_steps.png"))}
  figures["gan_class_over_steps"] = [
      plots.labelled_grid(stacked[k], [f"step {s}" for s in steps],
                          [""] * stacked.shape[2], f"GAN {class_names[k]}",
                          os.path.join(report_dir, f"gan_class{k}_steps.png"))
      for k in range(len(stacked))]
  metrics_path = paths.gan_metrics(workdir)
  if os.path.exists(metrics_path):
    figures["gan_curves"] = plots.gan_curves(
        metrics_log.read_jsonl(metrics_path), class_names,
        os.path.join(report_dir, "gan_curves.png"))
  figures["training_grids"] = sorted(
      glob.glob(os.path.join(paths.samples_dir(workdir), "gan_step*.png")))
  return steps, figures


def classifier_figures(config, workdir: str, scored: dict[str, Any],
                       experiments: dict[str, Any],
                       num_real: int) -> dict[str, str]:
  """Confusion matrices of every classifier and the low-data curves."""
  report_dir = paths.report_dir(workdir)

  def confusions(results):
    return {s: np.array(r["confusion"]) for s, r in results.items()}

  figures = {"confusion_sources": plots.confusion_matrices(
      confusions(scored), os.path.join(report_dir, "confusion_sources.png"))}
  if experiments:
    figures["confusion_low_data"] = plots.confusion_matrices(
        confusions(experiments),
        os.path.join(report_dir, "confusion_low_data.png"))
    fractions = parse_floats(config.evaluation.real_fractions)
    series = {}
    for ratio in [0.0] + parse_floats(config.evaluation.mix_ratios):
      runs = [experiments[experiment_name(f, ratio)] for f in fractions]
      series[f"+ GAN x{ratio:g}" if ratio else "real only"] = [
          (r["accuracy_mean"], r["accuracy_std"]) for r in runs]
    figures["low_data"] = plots.low_data_curves(
        fractions, series, num_real, os.path.join(report_dir, "low_data.png"))
  return figures


# The stage.


def versions() -> dict[str, str]:
  return {"python": platform.python_version(), "jax": jax.__version__,
          "flax": flax.__version__, "optax": optax.__version__,
          "orbax": ocp.__version__, "tfds": tfds.__version__,
          "numpy": np.__version__}


def evaluate(config, workdir: str) -> dict[str, Any]:
  """Runs every measurement, writes report.json, report.md and figures."""
  t0 = time.time()
  seeds = list(range(config.evaluation.seeds))
  test = input_pipeline.load_split(config.data, config.data.test_split)
  sources = config_schema.split_list(config.classifier.sources)
  data = {s: classifier_train.load_source(config, workdir, s)
          for s in dict.fromkeys(["real", "gan"] + sources)}
  # "real" too, if not a source: the feature space and low-data need it.
  scored = cas(config, workdir, list(dict.fromkeys(sources + ["real"])),
               seeds, test, data)
  experiments = low_data(config, workdir, data["real"], data["gan"], seeds,
                         test, scored)
  real_params = classifier_train.train(config, workdir, "real",
                                       *data["real"], 0).params
  compared = {"real_test": test}
  compared.update({s: d for s, d in data.items() if s != "real"})
  dist = distances(config, real_params, data["real"], compared)

  class_names = [str(k) for k in range(config.data.num_classes)]
  gan_steps, figures = gan_pictures(config, workdir, class_names)
  figures.update(classifier_figures(config, workdir, scored, experiments,
                                    len(data["real"][1])))
  figures = jax.tree.map(lambda p: os.path.relpath(p, workdir), figures)

  report = {"dataset": config.data.name, "test_split": config.data.test_split,
            "num_test_images": int(len(test[1])), "seeds": seeds,
            "cas": scored, "low_data": experiments, "distances": dist,
            "gan_steps": gan_steps, "figures": figures, "versions": versions(),
            "config": json.loads(config.to_json_best_effort()),
            "seconds": round(time.time() - t0, 1)}
  write(workdir, report)
  logging.info("evaluation: report in %s (%.1fs)",
               paths.report_md(workdir), report["seconds"])
  return report


# The report.


def write(workdir: str, report: dict[str, Any]) -> None:
  with open(paths.report_json(workdir), "w") as f:
    json.dump(report, f, indent=2)
  with open(paths.report_md(workdir), "w") as f:
    f.write(markdown(report))


def _pm(r: dict[str, Any]) -> str:
  return f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f}"


def _count(n) -> str:
  return f"{n:,}" if isinstance(n, int) else "/".join(f"{m:,}" for m in n)


def markdown(report: dict[str, Any]) -> str:
  """The report as GitHub markdown; image links are relative to the workdir."""
  seeds, scored, low = report["seeds"], report["cas"], report["low_data"]
  dist, fig = report["distances"], report["figures"]
  lines = [
      f"# Evaluation: {report['dataset']}", "",
      f"Every classifier has the same settings and is tested on the "
      f"{report['num_test_images']:,} real images of "
      f"`{report['dataset']}[{report['test_split']}]`. Accuracies are mean ± "
      f"sample std over classifier seeds {seeds} (in %).", "",
      "## Classification Accuracy Score (train on source, test on real)", "",
      "| source | training images | test accuracy (%) | per seed |",
      "| --- | ---: | ---: | --- |"]
  for name, r in scored.items():
    lines.append(f"| {name} | {_count(r['num_train_images'])} | {_pm(r)} | " +
                 ", ".join(f"{100 * a:.1f}" for a in r["accuracies"]) + " |")
  lines += ["", "Per-class test accuracy (%, mean over seeds):", ""]
  lines += results.class_table("source", {
      n: r["per_class_accuracy_mean"] for n, r in scored.items()},
                               results.percent)
  if low:
    ratios = sorted({r["gan_ratio"] for r in low.values()})
    fractions = sorted({r["real_fraction"] for r in low.values()})
    by = {(r["real_fraction"], r["gan_ratio"]): r for r in low.values()}
    lines += [
        "", "## Fewer real labels, with and without GAN images", "",
        "Stratified real subsets (nested across fractions), alone and with "
        "GAN images added; GAN x r adds r times the full real training set "
        "size. Test accuracy (%):", "",
        "| real fraction | real images | " + " | ".join(
            "real only" if r == 0 else f"+ GAN x{r:g}" for r in ratios) +
        " |", "| ---: | ---: |" + " ---: |" * len(ratios)]
    for f in fractions:
      n = by[(f, 0.0)]["num_train_images"]
      lines.append(f"| {f:g} | {_count(n)} | " + " | ".join(
          _pm(by[(f, r)]) for r in ratios) + " |")
    lines += ["", f"![low-data curves]({fig['low_data']})"]
  lines += [
      "", "## Distance to the real training images", "",
      f"Feature space: {dist['feature_space']}. Each set is subsampled "
      f"(stratified) to {dist['num_samples']:,} images; precision/recall "
      f"use k = {dist['knn_k']} nearest neighbours (Kynkäänniemi et al. "
      "2019). `real_test` (held-out real images) is the floor a perfect "
      "generator would reach.", "",
      "| set | Fréchet distance | precision | recall |",
      "| --- | ---: | ---: | ---: |"]
  for name, r in dist["sets"].items():
    o = r["overall"]
    lines.append(f"| {name} | {o['frechet']:.3f} | {o['precision']:.3f} | "
                 f"{o['recall']:.3f} |")
  for metric in ("frechet", "precision", "recall"):
    lines += ["", f"Per-class {metric}:", ""]
    lines += results.class_table("set", {
        n: [c[metric] for c in r["per_class"]]
        for n, r in dist["sets"].items()}, lambda v: f"{v:.2f}")
  lines += [
      "", "## GANs over training", "",
      f"Fixed noise, steps {report['gan_steps']} (step 0 = initialisation; "
      "later steps are the checkpoints still in the store).", "",
      f"![GANs over steps]({fig['gan_over_steps']})", "",
      "Per class: " + ", ".join(f"[{c}]({p})" for c, p in enumerate(
          fig["gan_class_over_steps"])) + "."]
  if fig["training_grids"]:
    lines += ["", "Grids written during training: " + ", ".join(
        f"[{os.path.basename(p)}]({p})" for p in fig["training_grids"]) + "."]
  if "gan_curves" in fig:
    lines += ["", f"![GAN training curves]({fig['gan_curves']})"]
  lines += ["", "## Confusion matrices (summed over seeds, row %)", "",
            f"![confusion, sources]({fig['confusion_sources']})"]
  if "confusion_low_data" in fig:
    lines += ["", f"![confusion, low data]({fig['confusion_low_data']})"]
  lines += [
      "", "## Notes", "",
      "- Standard FID (Inception features) is not computed: TODO, needs "
      "Inception weights in a local file; all distances above are in the "
      "project's own classifier feature space.",
      "- Classifiers are cached in the store by name, seed and a hash of "
      "their training set: a rerun reuses them, re-synthesized data trains "
      "new ones.",
      "- Versions: " + ", ".join(f"{n} {v}"
                                 for n, v in report["versions"].items()) +
      f"; evaluation took {report['seconds']:.0f}s."]
  return "\n".join(lines) + "\n"
