"""Every path inside a workdir, in one place.

The layout (what each stage writes and reads) is drawn in
checkpoints/README.md. Stages build their paths only here, so reading one
stage's output never imports the stage that writes it, and the layout can
change in one file. Plain `os.path` only: importing this module is free.
"""

from __future__ import annotations

import os

# The version directory of every data set gansynth writes (tfds layout).
DATASET_VERSION = "1.0.0"


def _under(workdir: str, *parts: str) -> str:
  return os.path.join(os.path.abspath(workdir), *parts)


def gan_checkpoints(workdir: str) -> str:
  """The Orbax store of the K GANs (stacked), one directory per step."""
  return _under(workdir, "checkpoints", "gan")


def classifier_checkpoints(workdir: str, source: str, seed: int,
                           data_fingerprint: str) -> str:
  """One classifier's store per source, seed and exact training set."""
  return _under(workdir, "checkpoints", "classifier",
                f"{source}_seed{seed}_{data_fingerprint}")


def refiner_checkpoints(workdir: str, run_key: str) -> str:
  """The refiner's store, one per setting hash (refiner.run_key)."""
  return _under(workdir, "checkpoints", "refiner", run_key)


def classifier_logs(workdir: str, source_tag: str, seed: int) -> str:
  """TensorBoard curves of one classifier."""
  return _under(workdir, "classifier", f"{source_tag}_seed{seed}")


def dataset_dir(root_dir: str, name: str) -> str:
  """A written data set under a tfds data_dir (or a workdir's synthetic/)."""
  return os.path.join(root_dir, name, DATASET_VERSION)


def synthetic_root(workdir: str) -> str:
  """The tfds data_dir of the synthetic sources."""
  return _under(workdir, "synthetic")


def source_dir(workdir: str, source: str) -> str:
  """The synthetic source `source` (e.g. "gan"), readable by
  `tfds.builder_from_directory`."""
  return dataset_dir(synthetic_root(workdir), source)


def source_stamp(workdir: str, source: str) -> str:
  """JSON saying how the stored source was made (kept if it still matches)."""
  return os.path.join(synthetic_root(workdir), f"{source}.json")


def samples_dir(workdir: str) -> str:
  return _under(workdir, "samples")


def gan_samples(workdir: str, step: int) -> str:
  """The per-class sample grid of the GANs at `step`."""
  return os.path.join(samples_dir(workdir), f"gan_step{step:06d}.png")


def refiner_samples(workdir: str, step: int) -> str:
  """Rendered/refined pairs of the refiner at `step`."""
  return os.path.join(samples_dir(workdir), f"refiner_step{step:06d}.png")


def refined_pairs(workdir: str) -> str:
  """Rendered/refined pairs of the finished refiner."""
  return os.path.join(samples_dir(workdir), "refined_pairs.png")


def synthetic_samples(workdir: str, source: str) -> str:
  """A per-class grid of what the classifier is trained on from `source`."""
  return os.path.join(samples_dir(workdir), f"{source}_synthetic.png")


GAN_METRICS = "gan_metrics.jsonl"  # under the workdir (metrics_log.MetricsLog)
REFINER_METRICS = "refiner_metrics.jsonl"


def gan_metrics(workdir: str) -> str:
  return _under(workdir, GAN_METRICS)


def lock_file(workdir: str) -> str:
  """Held by the one process writing the workdir (workdir_lock)."""
  return _under(workdir, ".lock")


def config_file(workdir: str) -> str:
  return _under(workdir, "config.json")


def timings_file(workdir: str) -> str:
  return _under(workdir, "timings.json")


def selection_scores(workdir: str) -> str:
  """Validation scores of the stored GAN checkpoints (selection.choose)."""
  return _under(workdir, "selection.json")


def results_json(workdir: str) -> str:
  return _under(workdir, "results.json")


def results_md(workdir: str) -> str:
  return _under(workdir, "results.md")


def report_dir(workdir: str) -> str:
  """Figures of the evaluation report."""
  return _under(workdir, "report")


def report_json(workdir: str) -> str:
  return _under(workdir, "report.json")


def report_md(workdir: str) -> str:
  return _under(workdir, "report.md")


def ablation_variant(workdir: str, name: str) -> str:
  """The workdir of one ablation variant, under the ablation's workdir."""
  return _under(workdir, name)


def ablation_json(workdir: str) -> str:
  return _under(workdir, "ablation.json")


def ablation_md(workdir: str) -> str:
  return _under(workdir, "ablation.md")
