"""Synthetic sources in a workdir: written once, read back only if they verify.

A source (`gan`, `procedural`, `refined`) is a tfds data set under
`<workdir>/synthetic/` plus a JSON stamp saying how it was made and holding
digests of its arrays and files. A rerun keeps a source whose stamp matches;
the classifier reads one only if its arrays match the recorded digest. Kept
apart from the stages that make sources, so reading one needs neither the
GAN stack nor the renderer.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from absl import logging
import numpy as np

from gansynth import paths
from gansynth.data import image_datasets
from gansynth.runtime import image_grid


DIGEST = "digest"  # stamp key: {"arrays": crc32, "files": {path: crc32}}


def read_stamp(workdir: str, source: str) -> dict | None:
  """The stored stamp of `source` (with its digest), None if absent or
  unreadable."""
  try:
    with open(paths.source_stamp(workdir, source)) as f:
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


def store_source(workdir: str, source: str, stamp: dict, make_images,
                 num_classes: int, grid_per_class: int) -> str:
  """Writes synthetic source `source` unless one made the same way exists.

  `stamp` says how the source is made (checkpoint step, counts, seeds,
  settings); `make_images()` returns (uint8 images, labels). The stored stamp
  adds digests of the images and labels and of every file written. A source
  whose stamp equals `stamp` and whose files match their digests is kept, so
  reruns never regenerate it; a damaged one is regenerated.
  """
  directory = paths.source_dir(workdir, source)
  path = paths.source_stamp(workdir, source)
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
  images, labels = make_images()
  t1 = time.time()
  logging.info("%s: made %d images in %.1fs", source, len(images), t1 - t0)
  if os.path.exists(path):
    os.remove(path)
  if os.path.exists(directory):
    shutil.rmtree(directory)
  image_datasets.write_image_dataset(
      paths.synthetic_root(workdir), source, {"train": (images, labels)},
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
  directory = paths.source_dir(workdir, source)
  remedy = ("Rerun with --config.stages=synthesize (plus the later stages) "
            "to regenerate it.")
  images, labels = image_datasets.load_written(directory, "train", remedy)
  stored = read_stamp(workdir, source) or {}
  digest = stored.get(DIGEST)
  expected = digest.get("arrays") if isinstance(digest, dict) else None
  if expected is None:
    raise image_datasets.DatasetError(
        f"synthetic set {source!r} at {directory} has no digest in "
        f"{paths.source_stamp(workdir, source)}, so it cannot be vouched for. "
        f"{remedy}")
  if image_datasets.arrays_digest(images, labels) != expected:
    raise image_datasets.DatasetError(
        f"synthetic set {source!r} at {directory} does not match the digest "
        f"recorded when it was written (damaged). {remedy}")
  return images, labels
