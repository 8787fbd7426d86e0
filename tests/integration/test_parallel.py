"""Sharding the K GANs over (forced) host devices changes no numbers."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

from gansynth import config_schema
from gansynth.runtime import parallel

SCRIPT = textwrap.dedent("""
    import chex, jax, jax.numpy as jnp, numpy as np
    from gansynth import config_schema
    from gansynth.data import input_pipeline
    from gansynth.gan import gan_train
    from gansynth.runtime import parallel

    assert jax.device_count() == 4, jax.devices()
    config = config_schema.default_config()
    config.data.num_classes = 4
    config.gan.g_width = config.gan.d_width = 4
    config.gan.latent_dim = 8
    config.gan.batch_size = 4
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 8, 1),
                                               dtype=np.uint8)
    data = input_pipeline.ClassData(images=images,
                                    counts=np.array([8, 6, 5, 7], np.int32))
    n = 3

    def run(mesh):
      state = gan_train.create_state(config, jax.random.key(0))
      state, placed = parallel.shard(mesh, state, data)
      state, metrics = gan_train.make_train_chunk(config)(state, placed, n)
      return jax.device_get((state, metrics)), state

    one = jax.make_mesh((1, 1), parallel.AXES, devices=jax.devices()[:1],
                        axis_types=(jax.sharding.AxisType.Auto,) * 2)
    # vmap: the fastest compile; unroll: the chunk carries the GANs apart.
    for strategy in ("vmap", "unroll"):
      config.gan.strategy = strategy
      want, _ = run(one)
      for gan in (4, 2):
        config.mesh.gan = gan
        mesh = parallel.make_mesh(config, 4)
        got, state = run(mesh)
        chex.assert_trees_all_close(got, want, atol=1e-5, rtol=1e-5)
        spec = state.gans.d_opt[0].mu["Dense_0"]["kernel"].sharding.spec
        assert spec[0] == "gan", (strategy, spec)
        assert len(state.gans.rng.sharding.device_set) == 4
    print("SHARDED_OK")
""")


def test_sharded_run_matches_one_device():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=4")
  root = REPO
  env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
  out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root,
                       capture_output=True, text=True, timeout=300)
  assert "SHARDED_OK" in out.stdout, out.stderr[-3000:]


def test_mesh_gan_axis_must_divide_k():
  config = config_schema.default_config()
  config.mesh.gan = 3
  with pytest.raises(ValueError, match="mesh.gan"):
    parallel.make_mesh(config, 4)
