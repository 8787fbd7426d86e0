"""Tests of the evaluation stage on tiny 8x8 digit configs (~1-2 minutes)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import load_config
from gansynth import config_schema
from gansynth import pipeline
from gansynth.classifier import classifier_train
from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.gan import gan_train
from gansynth.scoring import distribution_metrics
from gansynth.scoring import evaluation
from gansynth.scoring import results


def eval_config(tfds_dir):
  """quickstart:tiny, with classifiers good enough to compare sources."""
  config = load_config("quickstart:tiny")
  config.data.update(data_dir=tfds_dir, download=False)
  config.gan.update(train_steps=4, sample_every=2)
  config.synthesis.update(num_per_class=80, batch_size=1000)
  config.classifier.update(width=8, batch_size=32, train_steps=150,
                           eval_batch_size=512, sources="real,gan",
                           schedule="constant", shift=0)
  config.evaluation.update(seeds=2, real_fractions="0.1,1.0",
                           mix_ratios="0.5", feature_samples=200)
  return config


def test_frechet_distance_zero_for_same_set_and_grows_with_shift():
  x = np.random.default_rng(0).normal(size=(500, 8))
  assert distribution_metrics.frechet_distance(x, x) == pytest.approx(
      0, abs=1e-6)
  shifts = [distribution_metrics.frechet_distance(x, x + s)
            for s in (0.5, 1.0, 2.0)]
  # A mean shift s in 8 dimensions adds 8 s^2.
  np.testing.assert_allclose(shifts, [2.0, 8.0, 32.0], rtol=1e-6)


def test_precision_recall():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 4))
  assert distribution_metrics.precision_recall(x, x, 3) == {
      "precision": 1.0, "recall": 1.0}
  far = distribution_metrics.precision_recall(x, x + 10, 3)
  assert far == {"precision": 0.0, "recall": 0.0}
  # A generator covering a quarter of the real spread: realistic images, low
  # variety.
  narrow = distribution_metrics.precision_recall(
      x, 0.25 * rng.normal(size=(300, 4)), 3)
  assert narrow["precision"] > 0.9 and narrow["recall"] < 0.5


def test_stratified_subsets_are_nested_and_keep_class_shares():
  labels = np.repeat(np.arange(3), [100, 50, 10])
  small, big = (evaluation.stratified_subset(labels, f,
                                             np.random.default_rng(1))
                for f in (0.1, 0.5))
  assert np.bincount(labels[small]).tolist() == [10, 5, 1]
  assert np.bincount(labels[big]).tolist() == [50, 25, 5]
  assert set(small) <= set(big)


@pytest.mark.slow  # 15-40 s of training; CI's second step
def test_cas_identical_source_scores_like_real_shuffled_near_chance(
    tmp_path, tfds_dir):
  config = eval_config(tfds_dir)
  workdir = str(tmp_path)
  real = classifier_train.load_source(config, workdir, "real")
  shuffled = real[1][np.random.default_rng(0).permutation(len(real[1]))]
  for name, labels in (("gan", real[1]), ("procedural", shuffled)):
    sources.store_source(workdir, name, {}, lambda l=labels: (real[0], l),
                           config.data.num_classes, 2)
  test = input_pipeline.load_split(config.data, config.data.test_split)
  acc = {s: evaluation.score_seeds(
      config, workdir, s,
      lambda _, s=s: classifier_train.load_source(config, workdir, s),
      [0], test)["accuracy_mean"] for s in ("real", "gan", "procedural")}
  assert acc["real"] > 0.7, acc
  assert abs(acc["gan"] - acc["real"]) < 0.03, acc
  assert acc["procedural"] < 0.25, acc


@pytest.fixture(scope="module")
def finished_workdir(tmp_path_factory, tfds_dir):
  """A workdir after train_gan, synthesize and classify."""
  config = eval_config(tfds_dir)
  config.classifier.update(width=4, train_steps=10)  # Only plumbing here.
  workdir = str(tmp_path_factory.mktemp("finished"))
  config.stages = "train_gan,synthesize,classify"
  pipeline.run(config, workdir)
  return config, workdir


@pytest.mark.slow  # a finished tiny run; CI's second step
def test_evaluate_trains_no_gan_and_reuses_classifiers(finished_workdir,
                                                       monkeypatch):
  config, workdir = finished_workdir

  def no_gan_training(*args):
    raise AssertionError("the evaluate stage trained a GAN")

  monkeypatch.setattr(gan_train, "train", no_gan_training)
  monkeypatch.setattr(gan_train, "make_train_chunk", no_gan_training)
  trained = []
  make_chunk = classifier_train.make_train_chunk
  monkeypatch.setattr(classifier_train, "make_train_chunk",
                      lambda c, *a: trained.append(1) or make_chunk(c, *a))
  config.stages = "evaluate"
  pipeline.run(config, workdir)
  # New: real and gan seed 1 (seed 0 came from classify), and real0.1,
  # real0.1+gan0.5, real+gan0.5 for seeds 0 and 1.
  assert len(trained) == 8
  report = json.loads(Path(workdir, "report.json").read_text())
  assert report["gan_steps"] == [0, 2, 4]
  pipeline.run(config, workdir)
  assert len(trained) == 8  # All restored from the store.
  again = json.loads(Path(workdir, "report.json").read_text())
  assert [r["accuracies"] for r in again["low_data"].values()] == [
      r["accuracies"] for r in report["low_data"].values()]


@pytest.mark.slow  # a finished tiny run; CI's second step
def test_report_files(finished_workdir):
  config, workdir = finished_workdir
  if not os.path.exists(os.path.join(workdir, "report.json")):
    evaluation.evaluate(config, workdir)
  report = json.loads(Path(workdir, "report.json").read_text())
  assert {"cas", "low_data", "distances", "figures", "versions", "config",
          "seeds", "gan_steps"} <= set(report)
  assert set(report["cas"]) == {"real", "gan"}
  assert set(report["low_data"]) == {"real0.1", "real0.1+gan0.5", "real",
                                     "real+gan0.5"}
  # 0.5 x 1,437 real = 718.5 of 800 GAN images, stratified: 72 per class.
  low = report["low_data"]
  assert low["real0.1+gan0.5"]["num_train_images"] == (
      low["real0.1"]["num_train_images"] + 720)
  for r in report["cas"].values():  # mean and spread of the two seeds
    assert len(r["accuracies"]) == 2
    assert r["accuracy_mean"] == pytest.approx(np.mean(r["accuracies"]))
    assert r["accuracy_std"] == pytest.approx(np.std(r["accuracies"], ddof=1))
    confusion = np.array(r["confusion"])  # summed over the seeds
    assert confusion.sum() == 2 * 360
    assert r["accuracy_mean"] == pytest.approx(np.trace(confusion) / 720)
  assert set(report["distances"]["sets"]) == {"real_test", "gan"}
  gan = report["distances"]["sets"]["gan"]
  assert len(gan["per_class"]) == 10 and gan["overall"]["frechet"] > 0
  assert set(report["versions"]) == {"python", "jax", "flax", "optax", "orbax",
                                     "tfds", "numpy"}
  assert report["config"]["evaluation"]["seeds"] == 2
  markdown = Path(workdir, "report.md").read_text()
  assert "## Classification Accuracy Score" in markdown
  assert "not Inception" in markdown
  links = [line.split("](")[1].rstrip(")") for line in markdown.splitlines()
           if line.startswith("![")]
  assert len(links) >= 4
  for link in links + report["figures"]["gan_class_over_steps"]:
    assert Path(workdir, link).is_file(), link


@pytest.mark.slow  # a finished tiny run; CI's second step
def test_classify_is_the_cas_with_one_seed(finished_workdir):
  """results.json is evaluation.cas with the seed classifier.seed, and the
  evaluate stage's seed-0 scores are the very same classifiers."""
  config, workdir = finished_workdir
  stored = json.loads(Path(workdir, "results.json").read_text())
  test = input_pipeline.load_split(config.data, config.data.test_split)
  scored = evaluation.cas(config, workdir, ["real", "gan"],
                          [config.classifier.seed], test)
  again = json.loads(json.dumps(results.summary(config, len(test[1]), scored)))
  for r in (stored, again):
    for source in r["sources"].values():
      del source["seconds"]
  assert again == stored
  if not os.path.exists(os.path.join(workdir, "report.json")):
    evaluation.evaluate(config, workdir)
  report = json.loads(Path(workdir, "report.json").read_text())
  assert config.classifier.seed == report["seeds"][0] == 0
  for source, r in stored["sources"].items():
    assert report["cas"][source]["accuracies"][0] == r["accuracy"]
    assert report["cas"][source]["train_images_per_class"] == (
        r["train_images_per_class"])


def test_validate_rejects_bad_evaluation_fields(tfds_dir):
  for field, value in (("real_fractions", "0.1,2"), ("mix_ratios", "a"),
                       ("seeds", 0)):
    config = eval_config(tfds_dir)
    config.evaluation[field] = value
    with pytest.raises(config_schema.ConfigError, match=field):
      config_schema.validate(config)
