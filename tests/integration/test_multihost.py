"""Two processes (hosts) train the GANs together as one process would.

Each process is started through gansynth's own path (parallel.initialize
with jax.distributed, pipeline.run) with 2 forced CPU devices, so the 4
devices span two hosts: the state is placed per host, metrics, NaN checks
and sample grids are gathered across hosts, checkpoints are written and
restored by both, and a stop signal on one host stops both.
"""

import os
import socket
import subprocess
import sys
import textwrap

import chex
import jax
import pytest

from conftest import REPO
from gansynth import config_schema
from gansynth import paths
from gansynth.gan import gan_train
from gansynth.runtime import metrics_log
from gansynth.runtime import store

SCRIPT = textwrap.dedent("""
    import sys
    import jax
    from conftest import nan_in_gan_2_at_step_4, tiny
    from gansynth import config_schema, pipeline
    from gansynth.gan import gan_train
    from gansynth.runtime import parallel
    from gansynth.runtime import preemption

    workdir, tfds_dir, steps, nproc, pid, port, signal_on = sys.argv[1:]
    config = tiny(config_schema.default_config(), tfds_dir)
    config.stages = "train_gan"
    config.gan.train_steps = int(steps)
    config.gan.checkpoint_every = 3
    config.gan.sample_every = 2
    config.gan.on_nonfinite = "rollback"
    config.gan.strategy = "vmap"  # the fastest compile (test_parallel: unroll)
    if int(nproc) > 1:
      config.mesh.distributed = True
      config.mesh.coordinator_address = "localhost:" + port
      config.mesh.num_processes = int(nproc)
      config.mesh.process_id = int(pid)
    parallel.initialize(config)
    assert jax.device_count() == 4, jax.devices()

    # GAN 2's generator turns NaN at step 4: every host must see it and roll
    # that GAN back to the step-3 checkpoint.
    gan_train.make_train_chunk = nan_in_gan_2_at_step_4(
        gan_train.make_train_chunk)

    if pid == signal_on:  # as if SIGTERM reached this host only
      class Signalled(preemption.StopSignal):
        def __enter__(self):
          super().__enter__()
          self.requested = "SIGTERM"
          return self
      preemption.StopSignal = Signalled
    try:
      pipeline.run(config, workdir)
      print("FINISHED", flush=True)
    except preemption.Preempted as e:
      print("PREEMPTED", e, flush=True)
""")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run(workdir, tfds_dir, steps, nproc, signal_on=-1):
  """Runs SCRIPT as `nproc` processes with 4 // nproc devices each."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      f"--xla_force_host_platform_device_count={4 // nproc}"))
  env["PYTHONPATH"] = os.pathsep.join(
      [REPO, os.path.join(REPO, "tests"), env.get("PYTHONPATH", "")])
  port = str(free_port())
  procs = [subprocess.Popen(
      [sys.executable, "-c", SCRIPT, str(workdir), tfds_dir, str(steps),
       str(nproc), str(pid), port, str(signal_on)], env=env, cwd=REPO,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for pid in range(nproc)]
  outs = []
  for p in procs:
    try:
      out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    assert p.returncode == 0, err[-3000:]
    outs.append(out)
  return outs


def stored(workdir, tfds_dir):
  from conftest import tiny
  config = tiny(config_schema.default_config(), tfds_dir)
  mngr = store.manager(paths.gan_checkpoints(str(workdir)))
  state = gan_train.restore_or_create(config, mngr)
  return mngr.all_steps(), jax.device_get(state)


@pytest.mark.slow  # two subprocesses, about a minute
def test_two_hosts_match_one_through_signal_nan_and_resume(tfds_dir,
                                                           tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  # Prepares the data set once (two processes must not both build it).
  assert "FINISHED" in run(one, tfds_dir, 6, nproc=1)[0]

  # SIGTERM on host 1 only: both hosts stop at the same chunk end and save.
  outs = run(two, tfds_dir, 6, nproc=2, signal_on=1)
  assert all("PREEMPTED" in o and "step 2 of 6" in o for o in outs), outs
  assert stored(two, tfds_dir)[0] == [2]
  # Resumed on both hosts (through GAN 2's NaN at step 4 and its rollback).
  assert all("FINISHED" in o for o in run(two, tfds_dir, 6, nproc=2))

  steps_one, state_one = stored(one, tfds_dir)
  steps_two, state_two = stored(two, tfds_dir)
  assert (steps_one, steps_two) == ([3, 6], [2, 3, 6])
  chex.assert_trees_all_close(state_two, state_one, atol=1e-6, rtol=1e-6)
  assert (metrics_log.read_jsonl(two / "gan_metrics.jsonl")
          == metrics_log.read_jsonl(one / "gan_metrics.jsonl"))
  grids = sorted(os.listdir(two / "samples"))
  assert grids == sorted(os.listdir(one / "samples")), grids
  assert "gan_step000006.png" in grids


def test_distributed_runs_only_train_gan():
  config = config_schema.default_config()
  config.mesh.distributed = True
  with pytest.raises(config_schema.ConfigError,
                     match="--config.stages=train_gan on every host"):
    config_schema.validate(config)
  config.stages = "train_gan"
  config.mesh.coordinator_address = "localhost:1234"
  with pytest.raises(config_schema.ConfigError,
                     match="mesh.num_processes and mesh.process_id together"):
    config_schema.validate(config)
