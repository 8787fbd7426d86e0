"""The SimGAN refiner: shape and range, self-regularisation, history buffer,
resume, the `refine` stage's labelled data set, config errors; the same for
K per-class refiners trained in one vmapped step."""

import dataclasses
import functools

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth import config_schema
from gansynth import paths
from gansynth.data import image_datasets
from gansynth.data import input_pipeline
from gansynth.gan import synthesis
from gansynth.runtime import store
from gansynth.sim import refiner


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


@pytest.mark.slow  # 15-40 s of training; CI's second step
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


def test_pooled_self_regularisation_ignores_changes_inside_a_block():
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1), minval=-1,
                         maxval=1)
  # Move ink within each 2x2 block (a zero-mean change per block): the
  # pooled term does not see it, the pixel term does.
  within = jnp.tile(jnp.array([[0.2, -0.2], [-0.2, 0.2]]), (4, 4))[..., None]
  assert float(refiner.self_regularisation(x + within, x, 2)) < 1e-6
  np.testing.assert_allclose(
      refiner.self_regularisation(x + within, x, 1), 0.2, rtol=1e-5)
  # Moving ink to another block is seen at every pool size.
  across = jnp.zeros((8, 8, 1)).at[:4].set(0.2).at[4:].set(-0.2)
  assert float(refiner.self_regularisation(x + across, x, 2)) > 0.19
  # A pool that does not divide the image still covers all of it: a change
  # in the last two rows (which 3x3 blocks without padding would drop).
  edge = x.at[:, 6:].add(0.3)
  assert float(refiner.self_regularisation(edge, x, 3)) > 0.01


def test_reg_pool_reaches_r_loss(tiny_config):
  cfg = tiny_refiner(tiny_config).refiner
  state = refiner.create_state(cfg, (8, 8, 1), jax.random.key(0))
  # A perturbed R, whose change is not constant inside each 2x2 block.
  state = state.replace(r_params=jax.tree.map(
      lambda p: p + 0.02 * jax.random.normal(jax.random.key(1), p.shape),
      state.r_params))
  rendered, real = images(32, 0), images(32, 1)

  def r_l1(pool):
    cfg.reg_pool = pool
    _, metrics = refiner.make_train_chunks(cfg)["pretrain_r"](
        jax.tree.map(jnp.copy, state), rendered, real, 1)  # it is donated
    return float(metrics["r_l1"])

  pixel, pooled = r_l1(1), r_l1(2)
  assert pixel > 0.01, pixel
  # |block mean| <= block mean of |.|, with equality only for a change
  # that is constant inside every block.
  assert pooled < pixel - 1e-4, (pooled, pixel)


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


@pytest.mark.slow  # long compile; CI's second step
@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resumed_training_is_bit_identical(tiny_config, tmp_path, ema_decay):
  config = tiny_refiner(tiny_config)
  config.refiner.ema_decay = ema_decay
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


def ema_run(tiny_config, ema_decay, ema_start, steps=3):
  """(R's weights before, after `steps` adversarial steps, the state after)."""
  cfg = tiny_refiner(tiny_config).refiner
  cfg.ema_decay, cfg.ema_start, cfg.learning_rate = ema_decay, ema_start, 1e-2
  state = refiner.create_state(cfg, (8, 8, 1), jax.random.key(0))
  before = jax.device_get(state.r_params)  # the step donates the state
  state, _ = refiner.make_train_chunks(cfg)["adversarial"](
      state, images(32, 0), images(32, 1), steps)
  return before, state


def test_refiner_ema_copies_weights_before_its_start(tiny_config):
  _, state = ema_run(tiny_config, 0.9, ema_start=100)
  chex.assert_trees_all_equal(state.r_ema, state.r_params)
  assert refiner.refining_params(state) is state.r_ema


def test_refiner_ema_averages_weights(tiny_config):
  before, one = ema_run(tiny_config, 0.9, 0, steps=1)
  # One step from r_ema = r_params = before: 0.9 * before + 0.1 * after.
  want = jax.tree.map(lambda b, a: 0.9 * b + 0.1 * a, before, one.r_params)
  chex.assert_trees_all_close(one.r_ema, want, atol=1e-6)
  _, three = ema_run(tiny_config, 0.9, 0)
  moved = jax.tree.map(lambda e, p: float(jnp.max(jnp.abs(e - p))),
                       three.r_ema, three.r_params)
  assert max(jax.tree.leaves(moved)) > 1e-4  # R moved on; its average lags
  _, off = ema_run(tiny_config, 0.0, 0)
  assert off.r_ema is None and refiner.refining_params(off) is off.r_params


def test_refiner_ema_has_its_own_store(tiny_config):
  config = tiny_refiner(tiny_config)
  plain = refiner.run_key(config)
  config.refiner.ema_start = 5  # no moving average: same refiner, same store
  assert refiner.run_key(config) == plain
  config.refiner.ema_decay = 0.99
  assert refiner.run_key(config) != plain


def test_lr_scale_falls_linearly_to_zero_at_the_end():
  scale = lambda step: float(refiner.lr_scale(jnp.int32(step), 10, 4))
  assert [scale(s) for s in (0, 6, 7, 8, 9, 10, 12)] == [
      1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
  assert float(refiner.lr_scale(jnp.int32(9), 10, 0)) == 1.0  # off


def adversarial_step(cfg, decay_end):
  r, d = refiner.make_networks(cfg)
  return jax.jit(functools.partial(
      refiner.refiner_step, phase="adversarial", refiner=r, disc=d,
      tx=refiner.optimizer(cfg), batch_size=cfg.batch_size,
      reg_lambda=cfg.reg_lambda, r_updates=cfg.r_updates,
      decay_end=decay_end, decay_steps=2))


def test_decayed_step_at_its_end_leaves_weights_unchanged(tiny_config):
  cfg = tiny_refiner(tiny_config).refiner
  cfg.learning_rate, cfg.r_updates = 1e-2, 1
  state = refiner.create_state(cfg, (8, 8, 1), jax.random.key(0))
  before = jax.device_get(state)
  rendered, real = images(32, 0), images(32, 1)
  stopped, _ = adversarial_step(cfg, decay_end=0)(state, rendered, real)
  chex.assert_trees_all_equal(stopped.r_params, before.r_params)
  chex.assert_trees_all_equal(stopped.d_params, before.d_params)
  assert int(stopped.step) == 1  # the step still ran (Adam's moments moved)
  half, _ = adversarial_step(cfg, decay_end=1)(state, rendered, real)
  full, _ = adversarial_step(cfg, decay_end=10)(state, rendered, real)
  # Scale 1/2: half of the full step's move (Adam's update is linear in lr).
  chex.assert_trees_all_close(
      jax.tree.map(lambda h, b: h - b, half.r_params, before.r_params),
      jax.tree.map(lambda f, b: (f - b) / 2, full.r_params, before.r_params),
      atol=1e-6)


def test_decayed_training_resumes_bit_identically(tiny_config):
  """The schedule is keyed by the step: chunks of 3 + 2 steps equal 5."""
  cfg = tiny_refiner(tiny_config).refiner
  cfg.train_steps, cfg.decay_steps, cfg.learning_rate = 5, 4, 1e-2
  cfg.r_pretrain_steps = cfg.d_pretrain_steps = 0  # steps 2-4: 3/4 .. 1/4
  rendered, real = images(32, 0), images(32, 1)
  chunk = refiner.make_train_chunks(cfg)["adversarial"]
  new = lambda: refiner.create_state(cfg, (8, 8, 1), jax.random.key(0))
  whole, _ = chunk(new(), rendered, real, 5)
  part, _ = chunk(new(), rendered, real, 3)
  part = jax.device_get(part)  # as restored from the store
  resumed, _ = chunk(jax.device_put(part), rendered, real, 2)
  chex.assert_trees_all_equal(jax.device_get(whole), jax.device_get(resumed))
  cfg.decay_steps = 0
  constant, _ = refiner.make_train_chunks(cfg)["adversarial"](
      new(), rendered, real, 5)
  kernel = lambda s: jax.device_get(s.r_params["Conv_0"]["kernel"])
  assert not np.array_equal(kernel(constant), kernel(whole))


def test_decay_keys_the_store_by_its_length(tiny_config):
  config = tiny_refiner(tiny_config)
  plain = refiner.run_key(config)
  config.refiner.train_steps += 1  # constant rate: the same run, continued
  assert refiner.run_key(config) == plain
  config.refiner.decay_steps = 2
  decayed = refiner.run_key(config)
  assert decayed != plain
  config.refiner.train_steps += 1  # the schedule ends elsewhere: another run
  assert refiner.run_key(config) != decayed


def test_reg_pool_keys_its_own_store_and_leaves_others_as_they_were(
    tiny_config):
  config = tiny_refiner(tiny_config)
  plain = refiner.run_key(config)
  del config.refiner["reg_pool"]  # a config from before the option
  assert refiner.run_key(config) == plain
  config.refiner.reg_pool = 2
  assert refiner.run_key(config) != plain


def test_store_without_moving_average_still_restores(tiny_config, tmp_path):
  """A refiner stored before the moving average existed resumes as it was."""
  fields = [f.name for f in dataclasses.fields(refiner.RefinerState)
            if f.name != "r_ema"]
  Old = flax.struct.dataclass(type("Old", (), {  # pylint: disable=invalid-name
      "__annotations__": {name: object for name in fields}}))
  config = tiny_refiner(tiny_config)
  workdir = str(tmp_path)
  state = refiner.create_state(config.refiner, (8, 8, 1), jax.random.key(0))
  state = state.replace(step=jnp.int32(3))
  mngr = store.manager(paths.refiner_checkpoints(
      workdir, refiner.run_key(config)))
  store.save(mngr, 3, Old(**{name: getattr(state, name) for name in fields}),
             refiner.store_meta(config))
  mngr.wait_until_finished()
  config.refiner.train_steps = 1  # total 5: resumes at 3, runs 2 steps
  resumed = refiner.train(config, workdir, images(40, 0), images(40, 1))
  assert int(resumed.step) == 5 and resumed.r_ema is None


def test_nonfinite_refiner_stops_with_a_clear_error(tiny_config, tmp_path):
  config = tiny_refiner(tiny_config)
  config.refiner.learning_rate = float("nan")
  with pytest.raises(refiner.NonFiniteError, match="by step 2"):
    refiner.train(config, str(tmp_path), images(40, 0), images(40, 1))


def refine_and_check_labels(config, tmp_path):
  """Renders, refines, and checks the refined set keeps the rendered
  images' labels, shape and dtype and that the pairs PNG is written."""
  config.procedural.num_per_class = 8
  config.procedural.workers = 1
  config.classifier.sources = "real,procedural,refined"
  config_schema.validate(config)
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
  return workdir


def test_refine_stage_writes_labelled_set(tiny_config, tmp_path):
  config = tiny_refiner(tiny_config)
  workdir = refine_and_check_labels(config, tmp_path)
  # A rerun keeps the finished refiner and the written set.
  stamp = (tmp_path / "synthetic" / "refined.json").read_text()
  refiner.refine(config, workdir)
  assert (tmp_path / "synthetic" / "refined.json").read_text() == stamp


@pytest.mark.slow  # renders and trains; CI's second step
def test_refine_stage_refines_with_the_moving_average(tiny_config, tmp_path):
  config = tiny_refiner(tiny_config)
  config.refiner.ema_decay = 0.5
  config.refiner.learning_rate = 1e-2
  workdir = refine_and_check_labels(config, tmp_path)
  rendered, labels = image_datasets.load_written(
      paths.source_dir(workdir, "procedural"), "train")
  refined, _ = image_datasets.load_written(
      paths.source_dir(workdir, "refined"), "train")
  state = refiner.train(config, workdir, rendered, images(8))  # restored
  cfg = config.refiner
  np.testing.assert_array_equal(
      refined, refiner.refine_images(cfg, state.r_ema, rendered))
  assert not np.array_equal(
      refined, refiner.refine_images(cfg, state.r_params, rendered))


@pytest.mark.parametrize("field,value", [
    ("width", 0), ("batch_size", 1),
    ("history_size", 3), ("reg_lambda", -1.0), ("learning_rate", 0.0),
    ("r_pretrain_steps", -1), ("train_steps", 0), ("beta1", 1.0),
    ("ema_decay", 1.0), ("ema_decay", -0.1), ("ema_start", -1),
    ("decay_steps", -1), ("decay_steps", 1001), ("reg_pool", 0)])
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


# Per-class refiners (config.refiner.per_class).


def per_class_refiner(config, num_classes=3):
  config = tiny_refiner(config)
  config.refiner.per_class = True
  config.data.num_classes = num_classes
  return config


def labelled(counts, seed):
  """Random images with labels: counts[k] of class k, classes interleaved."""
  labels = np.concatenate([np.full(n, k, np.int32)
                           for k, n in enumerate(counts)])
  labels = np.random.default_rng(seed).permutation(labels)
  return images(len(labels), seed), labels


@pytest.mark.slow  # long compile; CI's second step
def test_per_class_state_has_a_leading_class_axis(tiny_config):
  config = per_class_refiner(tiny_config)
  cfg = config.refiner
  stacked = refiner.create_states(cfg, (8, 8, 1), jax.random.key(0), 3)
  single = refiner.create_state(cfg, (8, 8, 1), jax.random.key(0))
  chex.assert_trees_all_equal_shapes(
      jax.tree.map(lambda x: x[0], stacked), single)
  assert all(x.shape[0] == 3 for x in jax.tree.leaves(stacked))
  assert jax.tree.structure(refiner.abstract_state(cfg, (8, 8, 1), 3)) == (
      jax.tree.structure(stacked))
  # The K refiners start apart (each from its own key).
  kernel = stacked.r_params["Conv_0"]["kernel"]
  assert not np.array_equal(kernel[0], kernel[1])


def k_steps_and_one_by_one(cfg, phase, rendered, rendered_labels, real,
                           real_labels, one_step, num_steps=2):
  """The K-refiner chunk's state and mean metrics, and those of `one_step`
  (state, k, rendered ClassData, real ClassData) -> (state, metrics) run on
  each class's refiner alone."""
  rendered_d = input_pipeline.group_by_class(rendered, rendered_labels, 3)
  real_d = input_pipeline.group_by_class(real, real_labels, 3)
  state = refiner.create_states(cfg, (8, 8, 1), jax.random.key(0), 3)
  state = state.replace(step=state.step + 5)  # batches straddle epochs
  k_state, k_metrics = refiner.make_train_chunks(cfg, 3)[phase](
      jax.tree.map(jnp.copy, state), rendered_d, real_d, num_steps)
  if cfg.ema_decay and phase == "adversarial":  # the average lags R
    kernel = lambda p: p["Conv_0"]["kernel"]
    assert not np.allclose(kernel(k_state.r_ema), kernel(k_state.r_params))
  for k in range(3):
    single = jax.tree.map(lambda x, k=k: x[k], state)
    sums = {n: 0.0 for n in refiner.METRICS}
    for _ in range(num_steps):
      single, metrics = one_step(single, k, rendered_d, real_d)
      sums = {n: sums[n] + metrics[n] for n in sums}
    chex.assert_trees_all_close(jax.tree.map(lambda x, k=k: x[k], k_state),
                                single, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close({n: v[k] for n, v in k_metrics.items()},
                                {n: v / num_steps for n, v in sums.items()},
                                rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # long compile; CI's second step
@pytest.mark.parametrize("phase", refiner.PHASES)
def test_class_step_equals_one_refiner_per_class(tiny_config, phase):
  # Classes of equal size (no padding): refiner k's step in the K-refiner
  # chunk is the one-refiner chunk's step on class k's images alone.
  cfg = per_class_refiner(tiny_config).refiner
  one = refiner.make_train_chunks(cfg)[phase]
  rendered, rendered_labels = labelled([10, 10, 10], 0)
  real, real_labels = labelled([9, 9, 9], 1)
  k_steps_and_one_by_one(
      cfg, phase, rendered, rendered_labels, real, real_labels,
      lambda s, k, x, y: one(s, x.images[k], y.images[k], 1))


@pytest.mark.slow  # long compile; CI's second step
@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_class_step_draws_only_each_class_images(tiny_config, ema_decay):
  # Classes of unequal size: row k is padded, and refiner k draws from its
  # first counts[k] images, as refiner_step does given that count. Each
  # refiner's moving average (if on) is its own.
  cfg = per_class_refiner(tiny_config).refiner
  cfg.ema_decay = ema_decay
  r, d = refiner.make_networks(cfg)
  step = jax.jit(functools.partial(
      refiner.refiner_step, phase="adversarial", refiner=r, disc=d,
      tx=refiner.optimizer(cfg), batch_size=cfg.batch_size,
      reg_lambda=cfg.reg_lambda, r_updates=cfg.r_updates,
      ema_decay=cfg.ema_decay, ema_start=cfg.ema_start))
  rendered, rendered_labels = labelled([9, 12, 10], 0)
  real, real_labels = labelled([15, 8, 11], 1)
  k_steps_and_one_by_one(
      cfg, "adversarial", rendered, rendered_labels, real, real_labels,
      lambda s, k, x, y: step(s, x.images[k], y.images[k],
                              rendered_count=x.counts[k],
                              real_count=y.counts[k]))


@pytest.mark.slow  # long compile; CI's second step
def test_per_class_resumed_training_is_bit_identical(tiny_config, tmp_path):
  config = per_class_refiner(tiny_config)
  rendered, rendered_labels = labelled([9, 12, 10], 0)
  real, real_labels = labelled([15, 8, 11], 1)
  run = lambda workdir: refiner.train(
      config, str(workdir), rendered, real, (rendered, rendered_labels),
      rendered_labels=rendered_labels, real_labels=real_labels)
  full = run(tmp_path / "full")
  assert full.step.tolist() == [8, 8, 8]
  config.refiner.train_steps = 1  # stopped at step 5 ...
  part = run(tmp_path / "split")
  assert part.step.tolist() == [5] * 3 and min(part.history_count) > 0
  config.refiner.train_steps = 4  # ... then resumed from the store
  resumed = run(tmp_path / "split")
  chex.assert_trees_all_equal(jax.device_get(full), jax.device_get(resumed))
  assert (tmp_path / "full" / "samples" / "refiner_step000008.png").exists()


def test_one_and_k_refiners_never_share_a_store(tiny_config):
  config = per_class_refiner(tiny_config)
  key = refiner.run_key(config)
  config.refiner.per_class = False
  assert refiner.run_key(config) != key
  assert "num_refiners" not in refiner.store_meta(config)


def test_nonfinite_class_refiner_is_named(tiny_config, tmp_path,
                                          monkeypatch):
  config = per_class_refiner(tiny_config)
  rendered, rendered_labels = labelled([9, 12, 10], 0)
  real, real_labels = labelled([15, 8, 11], 1)
  make = refiner.make_train_chunks

  def poisoned(cfg, *args):
    chunks = make(cfg, *args)

    def poison(chunk):
      def run(state, *args, **kwargs):
        state, metrics = chunk(state, *args, **kwargs)
        r_params = jax.tree.map(lambda x: x.at[1].set(jnp.nan),
                                state.r_params)
        return state.replace(r_params=r_params), metrics
      return run
    return {phase: poison(c) for phase, c in chunks.items()}
  monkeypatch.setattr(refiner, "make_train_chunks", poisoned)
  with pytest.raises(refiner.NonFiniteError,
                     match=r"class\(es\) \[1\] became non-finite"):
    refiner.train(config, str(tmp_path), rendered, real,
                  rendered_labels=rendered_labels, real_labels=real_labels)


@pytest.mark.slow  # long compile; CI's second step
def test_per_class_refine_stage_keeps_labels_and_shapes(tiny_config,
                                                       tmp_path):
  config = per_class_refiner(tiny_config, num_classes=10)
  refine_and_check_labels(config, tmp_path)


def test_refine_by_class_uses_each_class_refiner(tiny_config):
  cfg = per_class_refiner(tiny_config).refiner
  state = refiner.create_states(cfg, (8, 8, 1), jax.random.key(0), 3)
  # Refiner 1 pushes every pixel to white; 0 and 2 stay the identity.
  bias = state.r_params["Conv_1"]["bias"]
  state = state.replace(r_params={**state.r_params, "Conv_1": {
      **state.r_params["Conv_1"], "bias": bias.at[1].set(10.0)}})
  x, labels = labelled([4, 5, 3], 2)
  out = refiner.refine_by_class(cfg, state.r_params, x, labels)
  assert out.shape == x.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[labels != 1], x[labels != 1])
  assert np.all(out[labels == 1] == 255)


def test_too_small_class_is_a_one_line_error(tiny_config, tmp_path):
  config = per_class_refiner(tiny_config)
  rendered, rendered_labels = labelled([9, 12, 10], 0)
  real, real_labels = labelled([15, 5, 11], 1)
  with pytest.raises(image_datasets.DatasetError) as e:
    refiner.train(config, str(tmp_path), rendered, real,
                  rendered_labels=rendered_labels, real_labels=real_labels)
  assert "class 1 has 5 real images" in str(e.value)
  assert "config.refiner.batch_size=8" in str(e.value)
  assert "\n" not in str(e.value)
  # The rendered count per class is known from the config: checked upfront.
  config = config_schema.default_config()
  config.refiner.per_class = True
  config.procedural.num_per_class = 10
  with pytest.raises(config_schema.ConfigError) as e:
    config_schema.validate(config)
  assert str(e.value).startswith("config.refiner.batch_size=64")
  assert "\n" not in str(e.value)
  config.refiner.batch_size = 8
  config_schema.validate(config)


# A conditional patch D for the one refiner (refiner.conditional).


def test_conditional_patch_d_scores_each_image_against_its_label():
  x = jax.random.uniform(jax.random.key(0), (4, 12, 12, 1), minval=-1,
                         maxval=1)
  d = refiner.PatchDiscriminator(8, num_classes=3)
  labels = jnp.array([0, 1, 2, 0])
  variables = d.init(jax.random.key(1), x, labels)
  # Random (not initial) projections, so classes differ.
  variables = jax.tree.map(
      lambda p: p + jax.random.normal(jax.random.key(2), p.shape), variables)
  logits = d.apply(variables, x, labels)
  assert logits.shape == (4, 3, 3)
  other = d.apply(variables, x, (labels + 1) % 3)
  assert np.all(np.abs(np.asarray(logits - other)).max(axis=(1, 2)) > 1e-3)
  # Without the projection D is the unconditional one, label-blind.
  params = dict(variables["params"])
  params.pop("class_projection")
  plain = refiner.PatchDiscriminator(8).apply({"params": params}, x)
  assert not np.allclose(plain, logits)


def test_history_buffer_keeps_each_image_with_its_label():
  size, shape = 4, (2, 2, 1)
  history = (jnp.zeros((size,) + shape), jnp.zeros((size,), jnp.int32))
  count = jnp.int32(0)
  for i in range(5):  # fills, then replaces
    labels = jnp.array([i, 10 + i], jnp.int32)
    items = (jnp.broadcast_to(labels[:, None, None, None].astype(float),
                              (2,) + shape), labels)
    history, count = refiner.push_history(history, count, items,
                                          jax.random.key(i))
  images, labels = refiner.sample_history(history, count, 40,
                                          jax.random.key(9))
  np.testing.assert_array_equal(images[:, 0, 0, 0], labels)
  assert set(np.asarray(labels).tolist()) <= {0, 1, 2, 3, 4, 10, 11, 12, 13,
                                              14}


def conditional_refiner(config):
  config = tiny_refiner(config)
  config.refiner.conditional = True
  config.data.num_classes = 3
  return config


@pytest.mark.slow  # long compile; CI's second step
def test_conditional_resumed_training_is_bit_identical(tiny_config, tmp_path):
  config = conditional_refiner(tiny_config)
  (_, rendered_labels), (real, real_labels) = (
      labelled([14, 14, 12], 0), labelled([14, 13, 13], 1))
  # Each class its own grey level, so an image in the history shows its class.
  rendered = np.broadcast_to(
      (40 + 80 * rendered_labels).astype(np.uint8)[:, None, None, None],
      (len(rendered_labels), 8, 8, 1)).copy()
  run = lambda name: refiner.train(
      config, str(tmp_path / name), rendered, real,
      rendered_labels=rendered_labels, real_labels=real_labels)
  full = run("full")
  history_images, history_labels = full.history
  filled = int(full.history_count)
  assert filled > 0
  # Every image in the history sits beside the label it was rendered with:
  # R (near the identity this early) keeps its class's grey level.
  got = np.asarray(history_images[:filled]).mean(axis=(1, 2, 3))
  want = (40 + 80 * np.asarray(history_labels[:filled])) / 127.5 - 1
  np.testing.assert_allclose(got, want, atol=0.2)
  config.refiner.train_steps = 1
  part = run("split")
  assert int(part.step) == 5
  config.refiner.train_steps = 4
  chex.assert_trees_all_equal(jax.device_get(full),
                              jax.device_get(run("split")))
  # The label-blind refiner is another run: another store.
  key = refiner.run_key(config)
  config.refiner.conditional = False
  assert refiner.run_key(config) != key


def test_conditional_refiner_needs_one_refiner_for_all_classes():
  config = config_schema.default_config()
  config.refiner.update(conditional=True, per_class=True)
  with pytest.raises(config_schema.ConfigError) as e:
    config_schema.validate(config)
  assert str(e.value).startswith("config.refiner.conditional=")
  assert "\n" not in str(e.value)
