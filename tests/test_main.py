"""The command line end to end on a tiny config, and its error messages."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

TINY = [
    "--config.gan.g_width=4", "--config.gan.d_width=4",
    "--config.gan.latent_dim=8", "--config.gan.batch_size=8",
    "--config.gan.train_steps=20", "--config.gan.log_every=10",
    "--config.gan.checkpoint_every=10", "--config.gan.sample_every=10",
    "--config.synthesis.num_per_class=30",
    "--config.procedural.num_per_class=30", "--config.classifier.width=8",
    "--config.classifier.batch_size=32", "--config.classifier.train_steps=60",
    "--config.refiner.width=4", "--config.refiner.d_width=4",
    "--config.refiner.batch_size=16", "--config.refiner.history_size=32",
    "--config.refiner.r_pretrain_steps=2",
    "--config.refiner.d_pretrain_steps=2",
    "--config.refiner.train_steps=4", "--config.refiner.log_every=4",
]


def run_main(workdir, tfds_dir, *args):
  cmd = [sys.executable, "-m", "gansynth.main",
         "--config", os.path.join(REPO, "configs", "quickstart.py"),
         "--workdir", str(workdir), f"--config.data.data_dir={tfds_dir}",
         *args]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)


def test_cli_end_to_end_and_rerun_reuses_the_store(tmp_path, tfds_dir):
  proc = run_main(tmp_path, tfds_dir, *TINY)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert set(results["sources"]) == {"real", "gan", "procedural", "refined"}
  real, gan = results["sources"]["real"], results["sources"]["gan"]
  assert results["sources"]["procedural"]["train_images_per_class"] == [30] * 10
  assert results["sources"]["refined"]["train_images_per_class"] == [30] * 10
  assert real["num_train_images"] == 1437
  assert gan["num_train_images"] == 300
  assert gan["train_images_per_class"] == [30] * 10
  assert results["num_test_images"] == 360
  assert real["accuracy"] > 0.5  # 10 classes: chance is 0.1
  for r in (real, gan):
    assert 0.0 <= r["accuracy"] <= 1.0 and len(r["per_class_accuracy"]) == 10
  assert "| real | 1,437 |" in (tmp_path / "results.md").read_text()
  for name in ("gan_step000010.png", "gan_step000020.png",
               "gan_synthetic.png", "procedural_synthetic.png",
               "refined_synthetic.png", "refined_pairs.png"):
    assert (tmp_path / "samples" / name).stat().st_size > 100
  assert (tmp_path / "gan_metrics.jsonl").read_text().count("\n") == 2
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path))
  assert "GANs step 20/20" in proc.stderr

  again = run_main(tmp_path, tfds_dir, *TINY)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "GANs step" not in again.stderr  # nothing retrained
  assert "refiner step" not in again.stderr
  assert "finished checkpoint kept" in again.stderr
  assert "is up to date, kept" in again.stderr
  with open(tmp_path / "results.json") as f:
    rerun = json.load(f)["sources"]
  for source in ("real", "gan", "procedural", "refined"):
    del rerun[source]["seconds"], results["sources"][source]["seconds"]
  assert rerun == results["sources"]


@pytest.mark.parametrize("override,message", [
    ("--config.gan.stpes=3",
     "unknown config key --config.gan.stpes: config.gan has no field 'stpes'"),
    ("--config.gam.train_steps=3", "Did you mean 'gan'?"),
    ("--config.gan.batch_size=abc", "invalid literal for int()"),
    ("--config.gan.batch_size=-4", "config.gan.batch_size=-4: must be a "
     "positive integer"),
    ("--config.gan.architecture=resnet", "choose one of ('study', 'dcgan')"),
    ("--config.data.image_size=30", "a multiple of 4"),
    ("--config.stages=train,classify", "a comma-separated list of"),
])
def test_bad_config_fails_with_one_clear_line(tmp_path, tfds_dir, override,
                                              message):
  proc = run_main(tmp_path, tfds_dir, override)
  assert proc.returncode != 0
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("gansynth: error:") and message in last, last
  assert "Traceback" not in proc.stderr
