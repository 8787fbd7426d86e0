"""Training K class GANs at once: one stacked state, one jitted step.

All K GANs' parameters, batch statistics, optimizer states and PRNG keys are
stacked on a leading axis of one pytree (`TrainState`). `gan_step` updates one
GAN (D then G) on a batch of its own class, given the stage's `Nets` (G's
and D's apply functions and the optimiser, built once); `make_step` lifts it
to all K with `jax.vmap`, and `make_train_chunk` runs a dynamic number of
such steps in one compiled call. On the CPU, `config.gan.strategy="auto"`
maps the same step through gansynth.cpu instead (faster there, same numbers).

Sections of `train`, top to bottom: input, models, state, checkpoint, step,
loop.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable

from absl import logging
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gansynth import cpu
from gansynth import models
from gansynth import paths
from gansynth.data import input_pipeline
from gansynth.gan import augment
from gansynth.gan import losses
from gansynth.gan import train_loop
from gansynth.runtime import image_grid
from gansynth.runtime import metrics_log
from gansynth.runtime import parallel
from gansynth.runtime import preemption
from gansynth.runtime import progress
from gansynth.runtime import store

METRICS = ("d_loss", "g_loss", "d_real", "d_fake")


@flax.struct.dataclass
class GANTrainState:
  """One GAN's training state (or K of them, stacked on axis 0)."""
  g_params: Any
  g_stats: Any
  g_ema: Any  # exponential moving average of g_params (= g_params if off)
  d_params: Any
  d_stats: Any
  g_opt: Any
  d_opt: Any
  rng: jax.Array  # raw uint32 key data, so checkpoints hold plain arrays


@flax.struct.dataclass
class TrainState:
  """The whole training state: the step and the K GANs' states, stacked."""
  step: jax.Array  # int32 scalar, shared by all GANs
  gans: GANTrainState


class NonFiniteError(FloatingPointError):
  """A GAN's loss became NaN or infinite."""


CONDITIONING = models.CONDITIONING


def num_gans(config) -> int:
  """K, the GANs in the stacked state: one per class for `per_class`, else
  one (class-conditional or unconditional)."""
  return config.data.num_classes if config.gan.conditioning == "per_class" else 1


def label_classes(config) -> int:
  """How many classes the nets themselves take as labels (0: none)."""
  return (config.data.num_classes
          if config.gan.conditioning == "conditional" else 0)


def num_rows(config) -> int:
  """Classes the samplers draw, one row each (a conditional GAN draws all
  classes; an unconditional one a single row)."""
  return 1 if config.gan.conditioning == "unconditional" else (
      config.data.num_classes)


def optimizer(gan_config) -> optax.GradientTransformation:
  return optax.adam(gan_config.learning_rate, b1=gan_config.beta1,
                    b2=gan_config.beta2)


@dataclasses.dataclass(frozen=True)
class Nets:
  """One stage's G, D and optimiser, built once and passed to the step, the
  sampler and the initialiser (as Flax's TrainState carries `apply_fn`)."""
  generator: nn.Module
  discriminator: nn.Module
  tx: optax.GradientTransformation
  g_apply: Callable  # generator.apply, or a CPU form of it (gansynth.cpu)
  d_apply: Callable


def make_nets(config) -> Nets:
  """The config's G, D and optimiser: build them once per stage and pass them
  as `nets` to the functions that take it."""
  generator, discriminator = models.make_gan(
      config.gan, config.data.image_size, config.data.channels,
      label_classes(config))
  return Nets(generator=generator, discriminator=discriminator,
              tx=optimizer(config.gan), g_apply=generator.apply,
              d_apply=discriminator.apply)


def init_gan(key: jax.Array, generator: nn.Module, discriminator: nn.Module,
             tx: optax.GradientTransformation, latent_dim: int,
             image_shape: tuple[int, int, int]) -> GANTrainState:
  kg, kd, kr = jax.random.split(key, 3)
  labels = (jnp.zeros((1,), jnp.int32) if generator.num_classes else None)
  g_vars = generator.init(kg, jnp.zeros((1, latent_dim)), labels, train=False)
  d_vars = discriminator.init(kd, jnp.zeros((1,) + image_shape), labels,
                              train=False)
  return GANTrainState(
      g_params=g_vars["params"], g_stats=g_vars.get("batch_stats", {}),
      g_ema=g_vars["params"], d_params=d_vars["params"],
      d_stats=d_vars.get("batch_stats", {}), g_opt=tx.init(g_vars["params"]),
      d_opt=tx.init(d_vars["params"]), rng=jax.random.key_data(kr))


def create_state(config, key: jax.Array, nets: Nets | None = None
                 ) -> TrainState:
  """K freshly initialised GANs, GAN k from fold_in(key, k)."""
  nets = nets or make_nets(config)
  shape = (config.data.image_size,) * 2 + (config.data.channels,)
  init = functools.partial(init_gan, generator=nets.generator,
                           discriminator=nets.discriminator, tx=nets.tx,
                           latent_dim=config.gan.latent_dim, image_shape=shape)

  def build(key):
    keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(
        jnp.arange(num_gans(config)))
    return TrainState(step=jnp.zeros((), jnp.int32), gans=jax.vmap(init)(keys))

  # One compiled program instead of ~200 op-by-op compiles (the same values
  # bit for bit, and faster).
  return jax.jit(build)(key)


def step_noise(key: jax.Array, step: jax.Array, batch_size: int,
               latent_dim: int) -> tuple[jax.Array, jax.Array]:
  """G's noise for D's update and for G's own (used without reuse_fake)."""
  kd, kg = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, 1),
                                               step))
  return (jax.random.normal(kd, (batch_size, latent_dim)),
          jax.random.normal(kg, (batch_size, latent_dim)))


def gan_step(gan: GANTrainState, images: jax.Array, count: jax.Array,
             step: jax.Array, *, nets: Nets, loss: str, batch_size: int,
             latent_dim: int, reuse_fake: bool = True, diffaugment: str = "",
             augment_strength: float = 1.0, r1_gamma: float = 0.0,
             n_critic: int = 1, ema_decay: float = 0.0, ema_start: int = 0,
             num_classes: int = 0
             ) -> tuple[GANTrainState, dict[str, jax.Array]]:
  """`n_critic` D updates then one G update of a single GAN on its class.

  `images`/`count` are this GAN's class (uint8 [N_max, H, W, C], padded).
  With `num_classes` the GAN is class-conditional and they are all classes
  (uint8 [num_classes, N_max, H, W, C], counts [num_classes]): each batch,
  real and fake, is balanced over the classes (input_pipeline.
  balanced_batch), and G and D take the labels.
  Randomness is fold_in(key, step): the same step always sees the same batch,
  noise and augmentation, which makes resumed runs match uninterrupted ones.
  Every image D sees, real or fake, in D's update and in G's, goes through
  the same random DiffAugment family (augment.py); G's gradient flows
  through it. With `reuse_fake`, G's update backpropagates through the fake
  batch of the last D update (one G forward per step, as PyTorch's DCGAN
  example does); without, G's update draws fresh noise and runs G again.
  """
  tx = nets.tx
  key = jax.random.wrap_key_data(gan.rng)
  k_batch, k_aug = jax.random.fold_in(key, 0), jax.random.fold_in(key, 2)

  def augmented(x, i):
    if not diffaugment:
      return x
    k = jax.random.fold_in(jax.random.fold_in(k_aug, step), i)
    return augment.diff_augment(k, x, diffaugment, augment_strength)

  # Fake labels: the same balanced layout as the real batches'.
  labels = (input_pipeline.balanced_labels(batch_size, num_classes)
            if num_classes else None)

  def run_g(params, z):
    return nets.g_apply({"params": params, "batch_stats": gan.g_stats}, z,
                        labels, train=True, mutable=["batch_stats"])

  def run_d(params, stats, x, y=labels):
    out, upd = nets.d_apply({"params": params, "batch_stats": stats}, x, y,
                            train=True, mutable=["batch_stats"])
    return out, upd.get("batch_stats", {})

  def real_batch(sub):
    if num_classes:
      return input_pipeline.balanced_batch(k_batch, images, count, batch_size,
                                           sub)
    return (input_pipeline.class_batch(k_batch, images, count, batch_size,
                                       sub), None)

  d_params, d_stats, d_opt = gan.d_params, gan.d_stats, gan.d_opt
  for i in range(n_critic):
    # D update i: its own real batch and noise (batch index step*n + i).
    sub = step * n_critic + i
    real, real_labels = real_batch(sub)
    z_d, z_g = step_noise(key, sub, batch_size, latent_dim)
    if reuse_fake and i == n_critic - 1:
      fake, g_vjp, g_upd = jax.vjp(lambda p: run_g(p, z_d), gan.g_params,
                                   has_aux=True)
    else:
      fake, _ = run_g(gan.g_params, z_d)
    fake_for_d = jax.lax.stop_gradient(fake)

    def d_loss_fn(params, stats, real=real, fake_for_d=fake_for_d, i=i,
                  real_labels=real_labels):
      real_in = augmented(real, 2 * i)
      real_logits, stats = run_d(params, stats, real_in, real_labels)
      fake_logits, stats = run_d(params, stats, augmented(fake_for_d, 2 * i + 1))
      total = losses.discriminator_loss(loss, real_logits, fake_logits)
      if r1_gamma:
        total += 0.5 * r1_gamma * losses.r1_penalty(
            lambda x: run_d(params, stats, x, real_labels)[0], real_in)
      return total, (stats, real_logits, fake_logits)

    (d_loss, (d_stats, real_logits, fake_logits)), d_grads = (
        jax.value_and_grad(d_loss_fn, has_aux=True)(d_params, d_stats))
    d_updates, d_opt = tx.update(d_grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, d_updates)

  def g_loss_on(fake):
    logits, _ = run_d(d_params, d_stats, augmented(fake, 2 * n_critic))
    return losses.generator_loss(loss, logits)

  if reuse_fake:
    g_loss, fake_grad = jax.value_and_grad(g_loss_on)(fake)
    (g_grads,) = g_vjp(fake_grad)
  else:
    def g_loss_fn(g_params):
      fake, g_upd = run_g(g_params, z_g)
      return g_loss_on(fake), g_upd
    (g_loss, g_upd), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        gan.g_params)
  g_stats = g_upd.get("batch_stats", {})
  g_updates, g_opt = tx.update(g_grads, gan.g_opt, gan.g_params)
  g_params = optax.apply_updates(gan.g_params, g_updates)
  # EMA generator (Karras et al.; Yazici et al. 2019): before ema_start it
  # follows the weights, so it starts from a trained G, not the init.
  decay = jnp.where(step >= ema_start, ema_decay, 0.0)
  g_ema = optax.incremental_update(g_params, gan.g_ema, 1.0 - decay)

  new = gan.replace(g_params=g_params, g_stats=g_stats, g_ema=g_ema,
                    d_params=d_params, d_stats=d_stats, g_opt=g_opt,
                    d_opt=d_opt)
  metrics = {"d_loss": d_loss, "g_loss": g_loss,
             "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
             "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
  return new, metrics


def step_options(gan_config) -> dict[str, Any]:
  """gan_step's keyword settings from `config.gan`."""
  g = gan_config
  return dict(loss=g.loss, batch_size=g.batch_size, latent_dim=g.latent_dim,
              reuse_fake=g.reuse_fake, diffaugment=g.diffaugment,
              augment_strength=g.augment_strength, r1_gamma=g.r1_gamma,
              n_critic=g.n_critic, ema_decay=g.ema_decay,
              ema_start=g.ema_start)


def make_step(config, nets: Nets | None = None,
              unstacked: bool = False) -> Callable:
  """The pure K-GAN step: (GANTrainState, images, counts, step) ->
  (GANTrainState, metrics),
  `jax.vmap` of gan_step (or gansynth.cpu's mapping of it, where selected).

  The GANs come and go stacked, or with `unstacked` (only where
  `cpu.holds_unstacked`) as a tuple of K per-GAN states.
  """
  nets = nets or make_nets(config)
  step = functools.partial(gan_step, num_classes=label_classes(config),
                           **step_options(config.gan))
  if cpu.selected(config):
    return cpu.map_over_gans(
        functools.partial(step, nets=cpu.lowered_nets(nets, config)), config,
        unstacked=unstacked)
  if unstacked:
    raise ValueError("the plain vmap step keeps the K GANs stacked")
  return jax.vmap(functools.partial(step, nets=nets), in_axes=(0, 0, 0, None))


def make_train_chunk(config, nets: Nets | None = None) -> Callable:
  """(state, data, num_steps) -> (state, mean metrics [K]); see train_loop.

  The state comes and goes stacked (under gansynth.cpu's `unroll` the
  chunk's steps carry its GANs unstacked).
  """
  unstacked = cpu.selected(config) and cpu.holds_unstacked(config)
  k_step = make_step(config, nets, unstacked)

  def one_step(state: TrainState, data: input_pipeline.ClassData):
    images, counts = data.images, data.counts
    if label_classes(config):  # the one conditional GAN gets every class
      images, counts = images[None], counts[None]
    gans, metrics = k_step(state.gans, images, counts, state.step)
    return TrainState(step=state.step + 1, gans=gans), metrics

  shapes = {n: (num_gans(config),) for n in METRICS}
  if cpu.selected(config):
    return cpu.repeat_step(one_step, shapes, unstacked)
  return train_loop.repeat_step(one_step, shapes)


def make_sampler(config, nets: Nets | None = None) -> Callable:
  """(GAN stacked, z [R, n, latent]) -> images [R, n, H, W, C] in [-1, 1].

  R = num_rows: the K GANs' rows, or a conditional GAN's row per class
  (class by class, so memory stays that of one class's n images).

  Uses the generators' running batch statistics (inference mode). The K
  generators are mapped as the train step is (`make_step`).
  """
  nets = nets or make_nets(config)
  fast = cpu.selected(config)
  if fast:
    nets = cpu.lowered_nets(nets, config)
  ema = uses_ema(config)

  def sample_one(gan: GANTrainState, z, labels=None):
    return nets.g_apply({"params": gan.g_ema if ema else gan.g_params,
                         "batch_stats": gan.g_stats}, z, labels, train=False)

  if label_classes(config):
    return jax.jit(_rows_by_label(sample_one))

  if fast:
    return jax.jit(cpu.map_over_gans(sample_one, config,
                                     in_batched=(True, True)))
  return jax.jit(jax.vmap(sample_one))


def make_scorer(config, nets: Nets | None = None) -> Callable:
  """(GAN stacked, images [R, n, H, W, C]) -> D's logits [R, n].

  Row r is scored by the D of the GAN that drew it (a conditional D given
  label r), in inference mode: how real that D finds each sample.
  """
  nets = nets or make_nets(config)

  def score_one(gan: GANTrainState, x, labels=None):
    logits = nets.d_apply({"params": gan.d_params, "batch_stats": gan.d_stats},
                          x, labels, train=False)
    return logits.reshape(x.shape[0])

  if label_classes(config):
    return jax.jit(_rows_by_label(score_one))
  return jax.jit(jax.vmap(score_one))


def _rows_by_label(fn: Callable) -> Callable:
  """fn(gan, x [n, ...], labels [n]) lifted to a conditional GAN's rows:
  (state stacked on a K = 1 axis, x [R, n, ...]) -> row r with label r,
  one row at a time (so memory stays that of one row)."""
  def rows(gans: GANTrainState, x):
    gan = jax.tree.map(lambda a: a[0], gans)
    labels = jnp.arange(x.shape[0], dtype=jnp.int32)
    return jax.lax.map(
        lambda xy: fn(gan, xy[0], jnp.full(x.shape[1], xy[1])), (x, labels))
  return rows


def uses_ema(config) -> bool:
  """Whether samples come from the EMA generator (where there is one)."""
  return config.synthesis.use_ema and config.gan.ema_decay > 0


def standing_stats(config, gans: GANTrainState, key: jax.Array,
                   num_samples: int, nets: Nets | None = None
                   ) -> GANTrainState:
  """`gans` with G's batch-norm statistics measured on its own samples.

  BN's running averages follow the raw generator's last training batches,
  which the EMA generator never produced. As BigGAN's "standing statistics"
  (Brock et al. 2019), the generator that samples (EMA or raw) runs in
  training mode on `num_samples` latents per GAN, and their batch mean and
  variance replace the running averages. A conditional GAN draws its labels
  evenly over the classes.
  """
  nets = nets or make_nets(config)
  params_of = (lambda g: g.g_ema) if uses_ema(config) else (
      lambda g: g.g_params)
  classes = label_classes(config)
  labels = (jnp.arange(num_samples, dtype=jnp.int32) % classes
            if classes else None)

  def measure(gan: GANTrainState, z):
    zeros = jax.tree.map(jnp.zeros_like, gan.g_stats)
    _, upd = nets.g_apply({"params": params_of(gan), "batch_stats": zeros},
                          z, labels, train=True, mutable=["batch_stats"])
    # flax BN: new = momentum * old + (1 - momentum) * batch; old is zero.
    stats = jax.tree.map(lambda s: s / (1.0 - models.BN_MOMENTUM),
                         upd["batch_stats"])
    return gan.replace(g_stats=stats)

  z = jax.random.normal(key, (num_gans(config), num_samples,
                              config.gan.latent_dim))
  return jax.jit(jax.vmap(measure))(gans, z)


def fixed_noise(config, per_class: int) -> jax.Array:
  key = jax.random.fold_in(jax.random.key(config.seed), 7)
  return jax.random.normal(key, (num_rows(config), per_class,
                                 config.gan.latent_dim))


def store_meta(config) -> dict[str, Any]:
  """What a stored GAN state depends on; a mismatch means another config.

  How the state is computed (gan.strategy, conv, dtype, reuse_fake) is left
  out on purpose: a store trained one way can be resumed or sampled another
  way, e.g. trained on a TPU and sampled on a laptop.
  """
  g = config.gan
  return {"num_gans": num_gans(config), "image_size": config.data.image_size,
          "channels": config.data.channels, "architecture": g.architecture,
          "g_width": g.g_width, "d_width": g.d_width,
          "latent_dim": g.latent_dim,
          # Only where it is not implied by num_gans, so that stores written
          # before the field existed still resume.
          **({"conditioning": g.conditioning}
             if g.conditioning == "conditional" else {})}


def abstract_state(config, nets: Nets | None = None) -> TrainState:
  """What create_state returns (shapes, dtypes, this process's first
  device), without computing it: the template a restore needs."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(lambda: create_state(config, jax.random.key(0), nets)))


def restore(config, mngr, step: int | None = None,
            verified_only: bool = False,
            nets: Nets | None = None) -> TrainState | None:
  """The stored K-GAN state: the one way every stage reads GAN checkpoints.

  Its bytes must match the digests recorded at save and its parameters must
  be finite (`nonfinite_restored`); a store of another config raises
  CheckpointError. Without `step`: the newest usable step, an unusable one
  skipped for an older one with a warning (None if the store is empty), see
  store.restore_latest. With `step`: that step, or CorruptCheckpoint.
  """
  template, meta = abstract_state(config, nets), store_meta(config)
  if step is None:
    return store.restore_latest(mngr, template, meta,
                                check=nonfinite_restored,
                                verified_only=verified_only)
  return store.restore_step(mngr, step, template, meta,
                            check=nonfinite_restored,
                            verified_only=verified_only)


def restore_trained(config, workdir: str, nets=None,
                    step: int | None = None) -> TrainState:
  """The newest usable GAN state in `workdir` (or the one of `step`) for
  sampling; CheckpointError if train_gan has not stored one."""
  state = restore(config, store.manager(paths.gan_checkpoints(workdir)),
                  step=step, nets=nets)
  if state is None:
    raise store.CheckpointError(
        f"no GAN checkpoint in {paths.gan_checkpoints(workdir)}: run the "
        "train_gan stage first (--config.stages=train_gan,synthesize)")
  return state


def nonfinite_restored(state: TrainState) -> str | None:
  """Names the GANs of a restored state whose parameters are not finite.

  Training never saves such a state (it stops or rolls back first), so in a
  restored one it is damage to the checkpoint, not a divergence.
  """
  bad = np.flatnonzero(~np.asarray(jax.device_get(
      params_finite(state.gans)))).tolist()
  if not bad:
    return None
  return (f"GAN(s) {bad} have non-finite parameters as restored (training "
          "never saves those, so the files are damaged)")


def restore_or_create(config, mngr, verified_only: bool = False,
                      nets=None) -> TrainState:
  """The newest usable stored state, else the initial one (config.seed)."""
  restored = restore(config, mngr, verified_only=verified_only, nets=nets)
  if restored is None:
    return create_state(config, jax.random.key(config.seed), nets)
  return restored


def nonfinite_gans(metrics: dict[str, np.ndarray],
                   params_finite: np.ndarray) -> list[int]:
  """The GANs whose chunk metrics or current parameters are not finite."""
  ok = np.asarray(params_finite, bool).copy()
  for values in metrics.values():
    ok &= np.isfinite(values)
  return np.flatnonzero(~ok).tolist()


@jax.jit
def params_finite(gans: GANTrainState) -> jax.Array:
  """[K] bool: whether all of GAN k's parameters are finite."""
  def finite(tree):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                              for x in jax.tree.leaves(tree)]))
  return jax.vmap(lambda g: finite((g.g_params, g.d_params)))(gans)


def roll_back(config, mngr, state: TrainState, bad: list[int],
              attempt: int) -> TrainState:
  """Puts GANs `bad` back to their newest verified stored (or initial) state.

  Each gets a new PRNG key, so it does not walk into the same divergence;
  the other GANs keep every step of progress.
  """
  good = restore_or_create(config, mngr, verified_only=True)
  rng = np.array(jax.device_get(good.gans.rng))
  for k in bad:
    rng[k] = jax.random.key_data(jax.random.fold_in(
        jax.random.wrap_key_data(rng[k]), 1000 + attempt))
  # Laid out as the running state (on several hosts, a host-local copy
  # cannot be mixed with the state's global arrays).
  good = parallel.like(good.gans.replace(rng=rng), state.gans)
  gans = state.gans
  for k in bad:
    gans = jax.tree.map(lambda cur, ok: cur.at[k].set(ok[k]), gans, good)
  return state.replace(gans=gans)


def handle_nonfinite(config, mngr, state: TrainState, bad: list[int], step: int,
                     rollbacks: int) -> TrainState:
  """Stops with a message naming GANs and step, or rolls them back."""
  where = (f"GAN(s) {bad} became non-finite (NaN/inf loss or parameters) by "
           f"step {step}")
  if (config.gan.on_nonfinite == "rollback"
      and rollbacks < config.gan.max_rollbacks):
    logging.warning("%s: rolling them back to their last checkpoint with a "
                    "new seed (rollback %d of at most %d)", where,
                    rollbacks + 1, config.gan.max_rollbacks)
    return roll_back(config, mngr, state, bad, rollbacks)
  raise NonFiniteError(
      f"{where}: training diverged (the state it started from was finite); "
      "stopped, the stored checkpoints are kept. Lower "
      "config.gan.learning_rate, change config.seed, or set "
      "config.gan.on_nonfinite=rollback, then rerun.")


def train(config, workdir: str) -> TrainState:
  """Trains (or resumes) the K class GANs; returns the final state."""
  # Input: each class's real images, on the device.
  images, labels = input_pipeline.load_split(config.data,
                                             config.data.train_split)
  logging.info("GANs: %d training images; building %d GAN(s) and compiling "
               "the %d-GAN step (strategy %s) ...", len(labels),
               num_gans(config), num_gans(config), config.gan.strategy)
  data = input_pipeline.group_by_class(images, labels, num_rows(config))
  input_pipeline.check_batch_size(
      data.counts, input_pipeline.per_class_batch(
          config.gan.batch_size, label_classes(config)),
      f"{config.data.name}[{config.data.train_split}]")

  # State and checkpoint: resume from the newest stored step if there is one.
  mngr = store.manager(paths.gan_checkpoints(workdir))
  nets = make_nets(config)
  state = restore_or_create(config, mngr, nets=nets)
  # Sharding: state and class data onto the devices (data from the host).
  state, data = parallel.shard(parallel.make_mesh(config, num_gans(config)),
                               state, data)
  start = int(state.step)
  total = config.gan.train_steps
  if start:
    logging.info("GANs: resuming from step %d of %d", start, total)
  if start >= total:
    return state

  # Step: compiled once; the state's buffers are donated.
  chunk = make_train_chunk(config, nets)
  sampler = make_sampler(config, nets)
  noise = fixed_noise(config, config.gan.grid_per_class)
  primary = parallel.is_primary()  # the one process that writes files
  per_row = num_rows(config) > 1  # a row (and a name) per class
  names = input_pipeline.class_names(config.data) if per_row else ["all"]
  log = metrics_log.MetricsLog(workdir, "gan_metrics.jsonl", names)
  meta = store_meta(config)
  intervals = [config.gan.log_every, config.gan.checkpoint_every,
               config.gan.sample_every]

  # Loop: run to the next log/checkpoint/sample boundary, then act there.
  step, rollbacks = start, 0
  images_per_step = config.gan.batch_size * num_gans(config)
  # Several processes stop together, so only at chunk ends (any_process).
  one_process = jax.process_count() == 1
  real_row = image_grid.per_class_grid(
      images, labels if per_row else 0 * labels,
      num_rows(config), config.gan.grid_per_class)
  bar = progress.bar(total, "GAN steps", initial=start)
  timer = None  # (time, step) once compiled: what the ETA is measured from
  with preemption.StopSignal() as stop:
    while step < total:
      n = train_loop.next_chunk(step, total, intervals)
      warm = None
      if timer is None and n > 1:
        # Compile on one step, so the ETA leaves the compilation out; the
        # chunk's metrics stay the mean over all its n steps.
        t_compile = time.time()
        state, warm = chunk(state, data, 1)
        jax.block_until_ready(warm)
        timer = (time.time(), step + 1)
        with progress.write_mode():
          logging.info("GANs: compiled and ran step %d in %.1fs", step + 1,
                       timer[0] - t_compile)
      state, metrics = chunk(
          state, data, n - (warm is not None),
          stop=lambda: one_process and stop.requested is not None)
      if warm is not None:
        metrics = jax.tree.map(lambda w, m: (w + (n - 1) * m) / n, warm,
                               metrics)
      if not one_process and parallel.any_process(stop.requested is not None):
        stop.requested = stop.requested or "a stop signal on another host"
      # One transfer (one gather across hosts) for the host's checks.
      metrics, finite = parallel.to_host((metrics, params_finite(state.gans)))
      previous, step = step, int(state.step)
      if timer is None:
        timer = (time.time(), step)
      bar.update(step - previous)
      bad = nonfinite_gans(metrics, finite)
      if bad:
        state = handle_nonfinite(config, mngr, state, bad, step, rollbacks)
        rollbacks += 1
        continue
      if (step % config.gan.log_every == 0 or step == total) and primary:
        log.write(step, metrics)
        seconds = time.time() - timer[0]
        rate = (step - timer[1]) * images_per_step / seconds if (
            step > timer[1] and seconds > 0) else 0.0
        eta = (f"eta {(total - step) * images_per_step / rate:.0f}s" if rate
               else "eta after the next log step")
        with progress.write_mode():
          logging.info(
              "GANs step %d/%d (%d%%) d_loss %.3f g_loss %.3f D(x) %.2f "
              "D(G(z)) %.2f | %.0f img/s, %s", step, total,
              100 * step // total, metrics["d_loss"].mean(),
              metrics["g_loss"].mean(), metrics["d_real"].mean(),
              metrics["d_fake"].mean(), rate, eta)
      if ((config.gan.sample_every and step % config.gan.sample_every == 0)
          or step == total):
        grid = input_pipeline.to_uint8(
            parallel.to_host(sampler(state.gans, noise)))
        if primary:
          picture = image_grid.labelled_grid(grid, real_row, names)
          image_grid.save_image(os.path.join(
              workdir, "samples", f"gan_step{step:06d}.png"), picture)
          log.write_images(step, {"samples": picture[None]})
      if (step % config.gan.checkpoint_every == 0 or step == total
          or stop.requested):
        store.save(mngr, step, state, meta)
      if stop.requested:
        bar.close()
        log.close()
        raise preemption.Preempted(
            f"{stop.requested} at GAN step {step} of {total}: checkpoint "
            "saved; rerun the same command to resume")
  bar.close()
  log.close()
  return state
