"""The SimGAN refiner: shape and range, self-regularisation, history buffer,
resume, the `refine` stage's labelled data set, config errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth import image_datasets
from gansynth import paths
from gansynth import refiner
from gansynth import synthesis


def tiny_refiner(config):
  r = config.refiner
  r.width, r.num_blocks, r.d_width = 8, 1, 8
  r.batch_size, r.history_size = 8, 16
  r.r_pretrain_steps, r.d_pretrain_steps, r.train_steps = 2, 2, 4
  r.log_every, r.checkpoint_every = 2, 3
  r.grid_per_class = 2
  return config


def images(n, seed=0, shape=(8, 8, 1)):
  return np.random.default_rng(seed).integers(0, 256, (n,) + shape, np.uint8)


def test_refiner_keeps_shape_and_range():
  x = jax.random.uniform(jax.random.key(0), (5, 12, 12, 3), minval=-1,
                         maxval=1)
  net = refiner.Refiner(width=8, num_blocks=2)
  params = net.init(jax.random.key(1), x)["params"]
  # Random (not zero) output weights: the range must hold for any R.
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2),
                                                        p.shape) * 3, params)
  y = net.apply({"params": params}, x)
  assert y.shape == x.shape
  assert float(jnp.max(jnp.abs(y))) <= 1.0
  assert float(jnp.mean(jnp.abs(y - x))) > 0.05  # it does change images
  d = refiner.PatchDiscriminator(8)
  logits = d.apply(d.init(jax.random.key(3), x), x)
  assert logits.shape == (5, 3, 3)  # one logit per patch


def test_large_lambda_keeps_r_near_identity(tiny_config):
  rendered, real = images(64, 0), images(64, 1)

  def drift(reg_lambda):
    cfg = tiny_refiner(tiny_config).refiner
    cfg.reg_lambda, cfg.learning_rate = reg_lambda, 3e-3
    cfg.r_pretrain_steps, cfg.d_pretrain_steps = 0, 2
    state = refiner.create_state(cfg, (8, 8, 1), jax.random.key(0))
    chunks = refiner.make_train_chunks(cfg)
    state, _ = chunks["pretrain_d"](state, rendered, real, 2)
    state, _ = chunks["adversarial"](state, rendered, real, 15)
    out = refiner.refine_images(cfg, state.r_params, rendered)
    return np.mean(np.abs(out.astype(float) - rendered)) / 255

  near, free = drift(100.0), drift(0.0)
  assert near < 0.01, near
  assert free > 3 * near, (free, near)


def test_history_buffer_holds_what_was_pushed():
  size, shape = 6, (2, 2, 1)
  history, count = jnp.zeros((size,) + shape), jnp.int32(0)
  batches = [jnp.full((2,) + shape, float(v)) for v in range(1, 6)]
  for i, batch in enumerate(batches[:3]):  # fills slots 0..5 in order
    history, count = refiner.push_history(history, count, batch,
                                          jax.random.key(i))
  assert int(count) == size
  np.testing.assert_array_equal(history[:, 0, 0, 0], [1, 1, 2, 2, 3, 3])
  for i, batch in enumerate(batches[3:]):  # full: replaces distinct slots
    history, count = refiner.push_history(history, count, batch,
                                          jax.random.key(10 + i))
    assert np.sum(np.asarray(history[:, 0, 0, 0]) == i + 4) == 2
  assert int(count) == size
  drawn = refiner.sample_history(history, count, 50, jax.random.key(0))
  assert set(np.asarray(drawn[:, 0, 0, 0]).tolist()) <= set(
      np.asarray(history[:, 0, 0, 0]).tolist())


def test_resumed_training_is_bit_identical(tiny_config, tmp_path):
  config = tiny_refiner(tiny_config)
  rendered, real = images(40, 0), images(40, 1)
  full = refiner.train(config, str(tmp_path / "full"), rendered, real)
  assert int(full.step) == refiner.total_steps(config.refiner) == 8
  # Stopped at step 5 (in the adversarial phase, history partly filled) ...
  config.refiner.train_steps = 1
  part = refiner.train(config, str(tmp_path / "split"), rendered, real)
  assert int(part.step) == 5 and int(part.history_count) > 0
  # ... then resumed from the store to the end.
  config.refiner.train_steps = 4
  resumed = refiner.train(config, str(tmp_path / "split"), rendered, real)
  chex.assert_trees_all_equal(jax.device_get(full), jax.device_get(resumed))
  lines = (tmp_path / "full" / "refiner_metrics.jsonl").read_text().splitlines()
  assert len(lines) == 4  # steps 2, 4, 6, 8


def test_nonfinite_refiner_stops_with_a_clear_error(tiny_config, tmp_path):
  config = tiny_refiner(tiny_config)
  config.refiner.learning_rate = float("nan")
  with pytest.raises(refiner.NonFiniteError, match="by step 2"):
    refiner.train(config, str(tmp_path), images(40, 0), images(40, 1))


def test_refine_stage_writes_labelled_set(tiny_config, tmp_path):
  config = tiny_refiner(tiny_config)
  config.procedural.num_per_class = 8
  config.procedural.workers = 1
  config.classifier.sources = "real,procedural,refined"
  workdir = str(tmp_path)
  synthesis.render_procedural(config, workdir)
  refiner.refine(config, workdir)
  rendered, labels = image_datasets.load_written(
      paths.source_dir(workdir, "procedural"), "train")
  refined, refined_labels = image_datasets.load_written(
      paths.source_dir(workdir, "refined"), "train")
  np.testing.assert_array_equal(refined_labels, labels)
  assert refined.shape == rendered.shape and refined.dtype == np.uint8
  assert (tmp_path / "samples" / "refined_pairs.png").exists()
  # A rerun keeps the finished refiner and the written set.
  stamp = (tmp_path / "synthetic" / "refined.json").read_text()
  refiner.refine(config, workdir)
  assert (tmp_path / "synthetic" / "refined.json").read_text() == stamp


@pytest.mark.parametrize("field,value", [
    ("per_class", True), ("width", 0), ("batch_size", 1),
    ("history_size", 3), ("reg_lambda", -1.0), ("learning_rate", 0.0),
    ("r_pretrain_steps", -1), ("train_steps", 0), ("beta1", 1.0)])
def test_bad_refiner_config_is_a_one_line_error(field, value):
  config = config_schema.default_config()
  config.refiner[field] = value
  with pytest.raises(config_schema.ConfigError) as e:
    config_schema.validate(config)
  assert str(e.value).startswith(f"config.refiner.{field}=")
  assert "\n" not in str(e.value)


def test_refined_is_a_source():
  config = config_schema.default_config()
  config.classifier.sources = "real,procedural,refined"
  config_schema.validate(config)
  config.classifier.sources = "real,refind"
  with pytest.raises(config_schema.ConfigError, match="classifier.sources"):
    config_schema.validate(config)
