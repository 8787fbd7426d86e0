"""The command line end to end on a tiny config, and its error messages."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

# On top of quickstart.py:tiny: enough classifier training to beat chance.
TINY = [
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
    "--config.classifier.sources=real,gan,procedural,refined",
]


def run_main(workdir, tfds_dir, *args):
  cmd = [sys.executable, "-m", "gansynth.main",
         "--config", os.path.join(REPO, "configs", "quickstart.py:tiny"),
         "--workdir", str(workdir), f"--config.data.data_dir={tfds_dir}",
         *args]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)


def event_tags(logdir) -> set[str]:
  """The tags in the TensorBoard event files directly in `logdir`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tags = set()
  for name in os.listdir(logdir):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(str(logdir / name)):
        tags |= {v.tag for v in event.summary.value}
  return tags


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
  for r in (real, gan):  # accuracy, per class and confusion agree
    confusion = np.array(r["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 360
    assert r["accuracy"] == pytest.approx(np.trace(confusion) / 360)
    np.testing.assert_allclose(
        r["per_class_accuracy"], np.diag(confusion) / confusion.sum(1),
        atol=1e-4)
  assert "| real | 1,437 |" in (tmp_path / "results.md").read_text()
  for name in ("gan_step000010.png", "gan_step000020.png",
               "gan_synthetic.png", "procedural_synthetic.png",
               "refined_synthetic.png", "refined_pairs.png"):
    assert (tmp_path / "samples" / name).stat().st_size > 100
  assert (tmp_path / "gan_metrics.jsonl").read_text().count("\n") == 2
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path))
  assert "GANs step 20/20" in proc.stderr
  # A quiet, readable log: one summary line per log step, no per-GAN
  # values, no tfds chatter about the data sets gansynth writes itself.
  lines = proc.stderr.splitlines()
  assert max(map(len, lines)) <= 200, max(lines, key=len)
  assert sum("GANs step" in line for line in lines) == 2
  assert "compiling the 10-GAN step" in proc.stderr
  for noise in ("Downloading and preparing", "dataset_info.json",
                "oneDNN", "absl::InitializeLog"):
    assert noise not in proc.stderr + proc.stdout, noise

  # TensorBoard: per-GAN tags by class name, CAS, hparams, classifier curves.
  tags = event_tags(tmp_path)
  assert {"d_loss", "d_loss/0", "d_loss/9", "cas/real", "cas/procedural",
          "samples", "_hparams_/session_start_info"} <= tags, tags
  assert "d_loss/gan0" not in tags
  assert {"classifier/loss", "classifier/train_accuracy"} <= event_tags(
      tmp_path / "classifier" / "gan_seed0")

  again = run_main(tmp_path, tfds_dir, *TINY)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "GANs step" not in again.stderr  # nothing retrained
  assert "refiner step" not in again.stderr
  assert "finished checkpoint kept" in again.stderr
  assert "is up to date, kept" in again.stderr
  # One config.json / timings.json entry per invocation, none overwritten.
  entries = {}
  for name in ("config", "timings"):
    with open(tmp_path / f"{name}.json") as f:
      entries[name] = json.load(f)
    assert len(entries[name]) == 2, name
  first, second = entries["config"]
  assert first["config"] == second["config"] and "--workdir" in first["argv"]
  assert [e["stages"] for e in entries["timings"]] == [
      ["train_gan", "synthesize", "classify"]] * 2
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
  assert proc.stderr.count(message) == 1  # printed once


def run_cli(*args, timeout=120):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "gansynth.main", *args],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=timeout)


def test_help_is_fast_exits_0_and_lists_configs_stages_and_an_example():
  t0 = time.time()
  proc = run_cli("--help")
  seconds = time.time() - t0
  assert proc.returncode == 0, proc.stderr
  assert seconds < 3, f"--help took {seconds:.1f}s (TF or JAX imported?)"
  out = proc.stdout
  assert "quickstart" in out and "svhn" in out  # configs/
  assert "train_gan" in out and "evaluate" in out  # stages
  assert "--config configs/quickstart.py --workdir" in out  # an example
  heavy = subprocess.run(
      [sys.executable, "-c", "import sys, gansynth.main; print(sorted("
       "m for m in ('jax', 'tensorflow') if m in sys.modules))"],
      cwd=REPO, capture_output=True, text=True, timeout=60)
  assert heavy.stdout.strip() == "[]", heavy.stdout + heavy.stderr


@pytest.mark.parametrize("args,message", [
    (["--config", "configs/nope.py", "--workdir", "/tmp/x"],
     "config file 'configs/nope.py' not found; configs in configs/: "),
    (["--config", "configs/quickstart.py"], "--workdir required"),
    (["--config", "configs/quickstart.py", "--workdir", "FILE"],
     "is a file, not a directory"),
])
def test_user_errors_are_one_line_printed_once(tmp_path, args, message):
  (tmp_path / "file").write_text("")
  args = [str(tmp_path / "file") if a == "FILE" else a for a in args]
  proc = run_cli(*args)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("gansynth: error: "), lines
  assert message in lines[0]
  if "not found" in message:
    assert "quickstart" in lines[0]


def test_error_after_start_up_is_printed_once(tmp_path, tfds_dir):
  proc = run_main(tmp_path, tfds_dir, "--config.data.name=no_such_data",
                  "--config.data.download=False")
  assert proc.returncode == 1
  assert proc.stderr.count("no_such_data is not prepared") == 1, proc.stderr
  assert "Traceback" not in proc.stderr
