"""The workdir layout: every path under the workdir, writers and readers agree."""

import inspect
import os
import subprocess
import sys

import numpy as np

from gansynth import paths
from gansynth.data import image_datasets


def test_every_workdir_path_is_under_the_workdir_and_distinct():
  made = []
  for name, fn in inspect.getmembers(paths, inspect.isfunction):
    if name.startswith("_") or name == "dataset_dir":
      continue
    extra = {"source": "gan", "seed": 1, "data_fingerprint": "abc",
             "step": 7, "run_key": "k", "source_tag": "gan_tag",
             "name": "variant"}
    params = list(inspect.signature(fn).parameters)[1:]
    made.append(fn("run", *(extra[p] for p in params)))
  root = os.path.abspath("run")
  assert all(p.startswith(root + os.sep) for p in made), made
  assert len(set(made)) == len(made), made
  assert paths.gan_samples("run", 7).endswith("gan_step000007.png")


def test_reading_a_stage_output_does_not_import_the_stage_that_wrote_it():
  code = ("import sys, gansynth.classifier.classifier_train, gansynth.config_schema; "
          "print(sorted(m for m in ('gansynth.gan.synthesis', 'gansynth.gan.gan_train',"
          " 'gansynth.sim.procedural', 'PIL.ImageFont') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=900, check=True)
  assert out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


def test_a_written_source_is_read_back_from_paths_source_dir(tmp_path):
  images = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8, 1)
  labels = np.array([0, 1, 0, 1])
  written = image_datasets.write_image_dataset(
      paths.synthetic_root(tmp_path), "gan", {"train": (images, labels)}, 2)
  assert os.path.samefile(written, paths.source_dir(tmp_path, "gan"))
  got_images, got_labels = image_datasets.load_written(
      paths.source_dir(tmp_path, "gan"), "train")
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
