"""SimGAN refiner: rendered digits made to look real, keeping their labels.

Shrivastava et al. 2017, "Learning from Simulated and Unsupervised Images
through Adversarial Training". A fully convolutional refiner R maps a
rendered image to one of the same shape; a local discriminator D scores
every patch of an image as real or refined. R's loss is D's adversarial loss
plus lambda * L1(psi(R(x)), psi(x)), the self-regularisation that keeps the
label (psi the identity, or an average pool: `self_regularisation`). D's
fake batch is half fresh refined images and half drawn from a history buffer
of earlier ones, so D does not forget old artefacts and R cannot reintroduce
them. Training runs three phases: R on the L1 term alone, then D alone, then
alternating updates.

Everything the step needs is in `RefinerState` (networks, optimizer states,
the history buffer, a PRNG key); batches and history slots are drawn from
fold_in(key, step), so a run resumed from the Orbax store repeats the
uninterrupted one bit for bit. The `refine` stage (`refine`) trains R on the
workdir's procedural source against the real training split and writes the
source `refined` with the rendered images' labels.

With `config.refiner.per_class`, K refiners (one per class, each with its own
patch discriminator and history) are trained at once, as the K class GANs
are: one `RefinerState` stacked on a leading K axis, `refiner_step` vmapped
over it and over each class's padded images (`input_pipeline.ClassData`),
one jitted call per step. Each image is then refined by its class's R.
With `config.refiner.conditional`, the one refiner's patch D sees each
image's label instead (a projection D), so R is judged against real images
of the rendered image's class.

With `config.refiner.ema_decay` > 0 the state also carries an exponential
moving average of R's weights, and the refined set and sample grids come
from it: the adversarial game keeps moving R, and an average over its last
steps does not depend on where the game stands at the very last one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from typing import Any, Callable

from absl import logging
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gansynth import paths
from gansynth.data import image_datasets
from gansynth.data import input_pipeline
from gansynth.data import sources
from gansynth.gan import gan_train
from gansynth.gan import train_loop
from gansynth.runtime import image_grid
from gansynth.runtime import metrics_log
from gansynth.runtime import preemption
from gansynth.runtime import store

PHASES = ("pretrain_r", "pretrain_d", "adversarial")
METRICS = ("r_loss", "r_adv", "r_l1", "d_loss", "d_real", "d_fake")


class NonFiniteError(FloatingPointError):
  """The refiner's or its discriminator's loss or parameters became NaN/inf."""


# Networks.


class ResnetBlock(nn.Module):
  """Two 3x3 convolutions with a skip connection (SimGAN's refiner block)."""
  width: int

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.Conv(self.width, (3, 3))(x))
    y = nn.Conv(self.width, (3, 3))(y)
    return nn.relu(x + y)


class Refiner(nn.Module):
  """3x3 conv to `width` maps, `num_blocks` ResNet blocks, 1x1 conv, tanh.

  The 1x1 conv (zero at initialisation) gives a residual 2 * tanh(.) that
  is added to the input and clipped to [-1, 1]: a fresh R is the identity,
  the output keeps the input's shape and range, and saturated pixels (most
  of a digit image is 0 or 255) still get full gradients, which adding in
  tanh's pre-activation space would not give them.
  """
  width: int = 64
  num_blocks: int = 4

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Conv(self.width, (3, 3))(x))
    for _ in range(self.num_blocks):
      h = ResnetBlock(self.width)(h)
    delta = nn.Conv(x.shape[-1], (1, 1), kernel_init=nn.initializers.zeros)(h)
    return jnp.clip(x + 2 * jnp.tanh(delta), -1.0, 1.0)


class PatchDiscriminator(nn.Module):
  """SimGAN's local discriminator: one real/refined logit per image patch.

  The paper's layers (widths 96, 64, 32, 32 for width 64): two strided 3x3
  convs, a 3x3 max pool (stride 1), a 3x3 and a 1x1 conv, then a 1x1 conv to
  one logit per patch: [N, H/4, W/4]. With `num_classes`, each patch's logit
  adds the projection <embed(y), h> of its features h (Miyato & Koyama
  2018), so a patch is judged against real images of its image's class.
  """
  width: int = 64
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, labels=None):
    w = self.width
    x = nn.relu(nn.Conv(w * 3 // 2, (3, 3), strides=2)(x))
    x = nn.relu(nn.Conv(w, (3, 3), strides=2)(x))
    x = nn.max_pool(x, (3, 3), strides=(1, 1), padding="SAME")
    x = nn.relu(nn.Conv(max(1, w // 2), (3, 3))(x))
    h = nn.relu(nn.Conv(max(1, w // 2), (1, 1))(x))
    logits = nn.Conv(1, (1, 1))(h)[..., 0]
    if not self.num_classes:
      return logits
    embed = nn.Embed(self.num_classes, h.shape[-1], name="class_projection")
    return logits + jnp.einsum("nhwc,nc->nhw", h, embed(labels))


def d_classes(cfg, num_classes: int) -> int:
  """Classes the single refiner's D is conditioned on (0: unconditional)."""
  return num_classes if cfg.conditional else 0


def make_networks(cfg, num_classes: int = 0
                  ) -> tuple[Refiner, PatchDiscriminator]:
  return (Refiner(cfg.width, cfg.num_blocks),
          PatchDiscriminator(cfg.d_width, d_classes(cfg, num_classes)))


def optimizer(cfg) -> optax.GradientTransformation:
  return optax.adam(cfg.learning_rate, b1=cfg.beta1, b2=0.999)


def self_regularisation(refined: jax.Array, rendered: jax.Array,
                        pool: int = 1) -> jax.Array:
  """Mean |psi(R(x)) - psi(x)|: SimGAN's self-regularisation term.

  psi is the paper's feature map: the identity at `pool` 1, else an average
  over `pool` x `pool` blocks, which keeps the digit's layout (and so its
  label) while leaving the stroke's shape inside each block free to change.
  """
  if pool > 1:
    psi = lambda x: nn.avg_pool(x, (pool, pool), strides=(pool, pool),
                                padding="SAME")
    refined, rendered = psi(refined), psi(rendered)
  return jnp.mean(jnp.abs(refined - rendered))


def bce(logits: jax.Array, target: float) -> jax.Array:
  """Mean binary cross-entropy over every patch of every image."""
  return jnp.mean(optax.sigmoid_binary_cross_entropy(
      logits, jnp.full_like(logits, target)))


# State.


@flax.struct.dataclass
class RefinerState:
  step: jax.Array  # int32 scalar, counting all three phases
  r_params: Any
  r_ema: Any  # moving average of r_params, or None with refiner.ema_decay 0
  d_params: Any
  r_opt: Any
  d_opt: Any
  # float32 [history_size, H, W, C], refined images; for a conditional D the
  # pair (those images, their int32 labels [history_size]).
  history: Any
  history_count: jax.Array  # int32 scalar: slots filled so far
  rng: jax.Array  # raw uint32 key data, so checkpoints hold plain arrays


def create_state(cfg, image_shape: tuple[int, int, int],
                 key: jax.Array, num_classes: int = 0) -> RefinerState:
  refiner, disc = make_networks(cfg, num_classes)
  kr, kd, kk = jax.random.split(key, 3)
  x = jnp.zeros((1,) + tuple(image_shape))
  conditional = bool(disc.num_classes)
  r_params = refiner.init(kr, x)["params"]
  d_params = disc.init(kd, x, jnp.zeros((1,), jnp.int32) if conditional
                       else None)["params"]
  tx = optimizer(cfg)
  history = jnp.zeros((cfg.history_size,) + tuple(image_shape))
  if conditional:
    history = (history, jnp.zeros((cfg.history_size,), jnp.int32))
  return RefinerState(
      step=jnp.zeros((), jnp.int32), r_params=r_params,
      r_ema=jax.tree.map(jnp.copy, r_params) if cfg.ema_decay > 0 else None,
      d_params=d_params,
      r_opt=tx.init(r_params), d_opt=tx.init(d_params), history=history,
      history_count=jnp.zeros((), jnp.int32), rng=jax.random.key_data(kk))


def create_states(cfg, image_shape: tuple[int, int, int], key: jax.Array,
                  num: int) -> RefinerState:
  """`num` refiners stacked on a leading axis, refiner k from fold_in(key, k)
  (as gan_train.create_state builds the K GANs): one per class."""
  def build(key):
    keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(num))
    return jax.vmap(lambda k: create_state(cfg, image_shape, k))(keys)
  return jax.jit(build)(key)


def abstract_state(cfg, image_shape, num: int = 0,
                   num_classes: int = 0) -> RefinerState:
  """What create_state (num = 0) or create_states (num refiners) returns,
  without computing it (a restore template)."""
  if num:
    return jax.eval_shape(lambda: create_states(cfg, image_shape,
                                                jax.random.key(0), num))
  return jax.eval_shape(lambda: create_state(cfg, image_shape,
                                             jax.random.key(0), num_classes))


def num_refiners(config) -> int:
  """K refiners for `refiner.per_class` (one per class), else 0: one
  unstacked refiner for all classes."""
  return config.data.num_classes if config.refiner.per_class else 0


def stored(state: RefinerState) -> dict[str, Any]:
  """The state as the Orbax store holds it: its fields, less a moving
  average that is off, so stores written before it existed still restore."""
  return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
          if getattr(state, f.name) is not None}


def from_stored(tree: dict[str, Any]) -> RefinerState:
  return RefinerState(**{"r_ema": None, **tree})


def refining_params(state: RefinerState) -> Any:
  """The weights that refine images: R's moving average if it has one."""
  return state.r_params if state.r_ema is None else state.r_ema


def steps_done(state: RefinerState) -> int:
  """The step of a single or stacked state (stacked refiners move together)."""
  return int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])


# History buffer.


def push_history(history: Any, count: jax.Array, items: Any,
                 key: jax.Array) -> tuple[Any, jax.Array]:
  """Stores `items` in the buffer: into empty slots while it fills, then
  over randomly chosen old ones (distinct slots, drawn from `key`).

  `history` and `items` are arrays, or pytrees of them (images and their
  labels) whose leading axes are the slots and the new items.
  """
  size = jax.tree.leaves(history)[0].shape[0]
  n = jax.tree.leaves(items)[0].shape[0]
  filling = (count + jnp.arange(n)) % size
  replacing = jax.random.choice(key, size, (n,), replace=False)
  slots = jnp.where(count < size, filling, replacing)
  return (jax.tree.map(lambda h, x: h.at[slots].set(x), history, items),
          jnp.minimum(count + n, size))


def sample_history(history: Any, count: jax.Array, n: int,
                   key: jax.Array) -> Any:
  """n items drawn (with replacement) from the filled slots."""
  idx = jax.random.randint(key, (n,), 0, jnp.maximum(count, 1))
  return jax.tree.map(lambda h: h[idx], history)


# Step.


def lr_scale(step: jax.Array, end: int, decay_steps: int) -> jax.Array:
  """1, then falling linearly to 0 over the `decay_steps` steps before `end`.

  CycleGAN's schedule (Zhu et al. 2017) for the adversarial phase: the
  refined set is what R stands at when the game stops, and a learning rate
  that reaches zero lets R settle there instead of stopping mid-move.
  Scaling Adam's update scales its learning rate. Keyed by the step (not
  by an optax schedule's update count, which for R is `r_updates` per
  step), it needs no optimizer state, so a resumed run stays bit-identical.
  """
  if not decay_steps:
    return jnp.ones(())
  return jnp.clip((end - step) / decay_steps, 0.0, 1.0)


def _batch(key, images, count, batch_size, step, labels=None):
  """A float batch of `images` (and its labels, or None) at `step`."""
  n = images.shape[0]
  count = jnp.int32(n) if count is None else count
  idx = input_pipeline.epoch_shuffled_indices(key, count, n, batch_size, step)
  return (input_pipeline.to_float(images[idx]),
          None if labels is None else labels[idx])


def refiner_step(state: RefinerState, rendered: jax.Array, real: jax.Array,
                 *, phase: str, refiner: nn.Module, disc: nn.Module,
                 tx: optax.GradientTransformation, batch_size: int,
                 reg_lambda: float, r_updates: int, reg_pool: int = 1,
                 ema_decay: float = 0.0,
                 ema_start: int = 0, decay_end: int = 0, decay_steps: int = 0,
                 rendered_count: jax.Array | None = None,
                 real_count: jax.Array | None = None,
                 rendered_labels: jax.Array | None = None,
                 real_labels: jax.Array | None = None
                 ) -> tuple[RefinerState, dict[str, jax.Array]]:
  """One step of `phase`: `r_updates` R updates and/or one D update.

  `rendered`/`real` are uint8 [N, H, W, C] on the device; batches are drawn
  from fold_in(key, stream) at the step, so a resumed run sees the same ones.
  With `rendered_count`/`real_count` only that many leading images are
  drawn from (a class's padded slice of `input_pipeline.ClassData`). A
  conditional D (`disc.num_classes`) takes the images' labels: a refined
  image keeps its rendered image's label, also in the history buffer.
  After R's updates its moving average (if the state has one) moves by
  `ema_decay`; before step `ema_start` it copies R's weights. With
  `decay_steps`, R's and D's learning rates fall linearly to zero over the
  `decay_steps` steps before step `decay_end` (`lr_scale`).
  """
  key = jax.random.wrap_key_data(state.rng)
  stream = lambda i: jax.random.fold_in(key, i)
  step = state.step
  r_params, r_opt, r_ema = state.r_params, state.r_opt, state.r_ema
  d_params, d_opt = state.d_params, state.d_opt
  history, count = state.history, state.history_count
  if not disc.num_classes:
    rendered_labels = real_labels = None
  zero = jnp.zeros(())
  metrics = {name: zero for name in METRICS}
  scale = lr_scale(step, decay_end, decay_steps)
  scaled = lambda updates: (optax.tree_utils.tree_scale(scale, updates)
                            if decay_steps else updates)

  def d_logits(params, x, labels=None):
    return disc.apply({"params": params}, x, labels)

  if phase in ("pretrain_r", "adversarial"):
    adversarial = phase == "adversarial"

    def r_loss_fn(params, x, labels):
      refined = refiner.apply({"params": params}, x)
      l1 = self_regularisation(refined, x, reg_pool)
      adv = (bce(d_logits(d_params, refined, labels), 1.0) if adversarial
             else zero)
      return adv + reg_lambda * l1, (adv, l1)

    for j in range(r_updates):
      x, x_labels = _batch(stream(1), rendered, rendered_count, batch_size,
                           step * r_updates + j, rendered_labels)
      (loss, (adv, l1)), grads = jax.value_and_grad(r_loss_fn, has_aux=True)(
          r_params, x, x_labels)
      updates, r_opt = tx.update(grads, r_opt, r_params)
      r_params = optax.apply_updates(r_params, scaled(updates))
    metrics.update(r_loss=loss, r_adv=adv, r_l1=l1)
    if state.r_ema is not None:
      decay = jnp.where(step >= ema_start, ema_decay, 0.0)
      r_ema = optax.incremental_update(r_params, r_ema, 1.0 - decay)

  if phase in ("pretrain_d", "adversarial"):
    half = batch_size // 2
    x, x_labels = _batch(stream(2), rendered, rendered_count, batch_size,
                         step, rendered_labels)
    y, y_labels = _batch(stream(3), real, real_count, batch_size, step,
                         real_labels)
    refined = refiner.apply({"params": r_params}, x)
    # Half fresh, half from the history (fresh ones while it is empty).
    new_items = refined if x_labels is None else (refined, x_labels)
    old_items = jax.tree.map(
        lambda old, new: jnp.where(count > 0, old, new[half:]),
        sample_history(history, count, batch_size - half,
                       jax.random.fold_in(stream(4), step)), new_items)
    fake_items = jax.tree.map(
        lambda new, old: jnp.concatenate([new[:half], old]), new_items,
        old_items)
    fake, fake_labels = (fake_items, None) if x_labels is None else fake_items

    def d_loss_fn(params):
      real_logits = d_logits(params, y, y_labels)
      fake_logits = d_logits(params, fake, fake_labels)
      loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
      return loss, (real_logits, fake_logits)

    (loss, (real_logits, fake_logits)), grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(d_params)
    updates, d_opt = tx.update(grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, scaled(updates))
    history, count = push_history(
        history, count, jax.tree.map(lambda new: new[:half], new_items),
        jax.random.fold_in(stream(5), step))
    metrics.update(d_loss=loss,
                   d_real=jnp.mean(jax.nn.sigmoid(real_logits)),
                   d_fake=jnp.mean(jax.nn.sigmoid(fake_logits)))

  new = state.replace(step=step + 1, r_params=r_params, r_ema=r_ema,
                      r_opt=r_opt, d_params=d_params, d_opt=d_opt,
                      history=history, history_count=count)
  return new, metrics


def class_step(step: Callable) -> Callable:
  """`refiner_step` (phase and settings bound) lifted to K stacked refiners:
  (state [K], rendered ClassData, real ClassData) -> (state, metrics [K]).

  Refiner k sees only class k's images (the first counts[k] of its padded
  row), as gan_train maps the K GANs' step over their classes.
  """
  def k_step(state: RefinerState, rendered: input_pipeline.ClassData,
             real: input_pipeline.ClassData):
    return jax.vmap(lambda s, x, nx, y, ny: step(
        s, x, y, rendered_count=nx, real_count=ny))(
            state, rendered.images, rendered.counts, real.images, real.counts)
  return k_step


def make_train_chunks(cfg, num: int = 0,
                      num_classes: int = 0) -> dict[str, Callable]:
  """phase -> chunk(state, rendered, real, num_steps) (train_loop).

  num = 0: one refiner, `rendered`/`real` uint8 [N, H, W, C], or with a
  conditional D (`cfg.conditional`, `num_classes`) the pairs (images,
  labels). num = K: K stacked refiners (create_states), `rendered`/`real`
  ClassData of K classes, metrics [K].
  """
  refiner, disc = make_networks(cfg, num_classes)
  chunks = {}
  for phase in PHASES:
    step = functools.partial(
        refiner_step, phase=phase, refiner=refiner, disc=disc,
        tx=optimizer(cfg), batch_size=cfg.batch_size,
        reg_lambda=cfg.reg_lambda, reg_pool=cfg.reg_pool,
        r_updates=cfg.r_updates, ema_decay=cfg.ema_decay,
        ema_start=cfg.ema_start, decay_end=total_steps(cfg),
        decay_steps=cfg.decay_steps)
    if num:
      chunks[phase] = train_loop.repeat_step(class_step(step),
                                             {n: (num,) for n in METRICS})
    elif disc.num_classes:
      with_labels = lambda s, x, y, step=step: step(
          s, x[0], y[0], rendered_labels=x[1], real_labels=y[1])
      chunks[phase] = train_loop.repeat_step(with_labels,
                                             {n: () for n in METRICS})
    else:
      chunks[phase] = train_loop.repeat_step(step, {n: () for n in METRICS})
  return chunks


def phase_at(cfg, step: int) -> tuple[str, int]:
  """The phase of `step` and the step at which that phase ends."""
  ends = np.cumsum([cfg.r_pretrain_steps, cfg.d_pretrain_steps,
                    cfg.train_steps])
  for phase, end in zip(PHASES, ends):
    if step < end:
      return phase, int(end)
  return PHASES[-1], int(ends[-1])


def total_steps(cfg) -> int:
  return cfg.r_pretrain_steps + cfg.d_pretrain_steps + cfg.train_steps


@jax.jit
def params_finite(state: RefinerState) -> jax.Array:
  leaves = jax.tree.leaves((state.r_params, state.d_params))
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


@jax.jit
def class_params_finite(state: RefinerState) -> jax.Array:
  """[K] bool: whether refiner k's (R's and D's) parameters are finite."""
  return jax.vmap(params_finite)(state)


@functools.lru_cache(maxsize=4)
def _apply_fn(width: int, num_blocks: int):
  refiner = Refiner(width, num_blocks)
  return jax.jit(lambda p, x: refiner.apply(
      {"params": p}, input_pipeline.to_float(x)))


def refine_images(cfg, r_params, images: np.ndarray,
                  batch_size: int = 1000) -> np.ndarray:
  """R applied to uint8 images, in batches of one shape: uint8 out."""
  apply = _apply_fn(cfg.width, cfg.num_blocks)
  return input_pipeline.in_batches(
      lambda x: input_pipeline.to_uint8(apply(r_params, x)), images,
      batch_size)


def refine_by_class(cfg, r_params, images: np.ndarray, labels: np.ndarray,
                    batch_size: int = 1000) -> np.ndarray:
  """Each image through its own class's R (`r_params` stacked [K, ...], as
  trained with per_class): uint8 out, in the input's order."""
  num = jax.tree.leaves(r_params)[0].shape[0]
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= num):
    raise image_datasets.DatasetError(
        f"refiner: labels outside [0, {num}) for {num} per-class refiners; "
        "set config.data.num_classes to match the procedural set")
  out = np.empty_like(images)
  for k in range(num):
    idx = np.flatnonzero(labels == k)
    if len(idx):
      params = jax.tree.map(lambda p, k=k: p[k], r_params)
      out[idx] = refine_images(cfg, params, images[idx],
                               min(batch_size, len(idx)))
  return out


def refine_labelled(cfg, r_params, images: np.ndarray, labels: np.ndarray,
                    batch_size: int = 1000) -> np.ndarray:
  """R applied to labelled images: the one R, or (per_class) each image's
  class's R."""
  if cfg.per_class:
    return refine_by_class(cfg, r_params, images, labels, batch_size)
  return refine_images(cfg, r_params, images, batch_size)


def pairs_grid(cfg, r_params, images: np.ndarray, labels: np.ndarray,
               num_classes: int, per_class: int) -> np.ndarray:
  """uint8 [K, 2 * per_class, ...]: rendered | refined pairs, row = class
  (refined by that class's R with cfg.per_class)."""
  rendered = image_grid.per_class_grid(images, labels, num_classes, per_class)
  flat = rendered.reshape((-1,) + rendered.shape[2:])
  rows = np.repeat(np.arange(num_classes), per_class)
  refined = refine_labelled(cfg, r_params, flat, rows, len(flat)).reshape(
      rendered.shape)
  return np.stack([rendered, refined], axis=2).reshape(
      (num_classes, 2 * per_class) + rendered.shape[2:])


# Store.


def run_key(config) -> str:
  """A short hash of what a refiner's training depends on (its settings, the
  procedural set, the real split): another one trains into another store."""
  cfg = config.refiner.to_dict()
  for name in ("log_every", "checkpoint_every", "train_steps"):
    cfg.pop(name)
  if not cfg["conditional"]:  # as keyed before the option existed
    cfg.pop("conditional")
  if not cfg["ema_decay"]:  # likewise
    cfg.pop("ema_decay")
    cfg.pop("ema_start")
  if cfg.get("reg_pool", 1) == 1:  # likewise
    cfg.pop("reg_pool", None)
  if cfg["decay_steps"]:  # the schedule ends at the last step
    cfg["train_steps"] = config.refiner.train_steps
  else:
    cfg.pop("decay_steps")
  procedural = config.procedural.to_dict()
  procedural.pop("workers")
  what = {"refiner": cfg, "seed": config.seed, "data": config.data.name,
          "split": config.data.train_split, "size": config.data.image_size,
          "channels": config.data.channels,
          "procedural": procedural}
  text = json.dumps(what, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:10]


def store_meta(config) -> dict[str, Any]:
  r = config.refiner
  # num_refiners only where stacked, so single-refiner stores stay as they were.
  return {"image_size": config.data.image_size,
          "channels": config.data.channels, "width": r.width,
          "num_blocks": r.num_blocks, "d_width": r.d_width,
          "history_size": r.history_size,
          **({"num_refiners": num_refiners(config)} if r.per_class else {}),
          **({"conditional_d": config.data.num_classes}
             if r.conditional else {}),
          **({"ema": True} if r.ema_decay > 0 else {})}


def class_data(images: np.ndarray, labels: np.ndarray | None, num: int,
               batch_size: int, name: str) -> input_pipeline.ClassData:
  """`images` grouped by class for K per-class refiners; a class with fewer
  than `batch_size` images is a one-line error naming it."""
  if labels is None:
    raise ValueError(f"refiner.per_class needs the {name} images' labels")
  input_pipeline.check_labels(labels, num, f"refiner: the {name} images")
  counts = np.bincount(labels, minlength=num)
  small = [k for k in range(num) if counts[k] < batch_size]
  if small:
    k = small[0]
    raise image_datasets.DatasetError(
        f"refiner.per_class: class {k} has {counts[k]} {name} images, fewer "
        f"than config.refiner.batch_size={batch_size} (classes {small} are "
        "short); lower config.refiner.batch_size, give every class more "
        "images, or set config.refiner.per_class=False")
  return input_pipeline.group_by_class(images, labels, num)


def checked_labels(labels: np.ndarray | None, num_classes: int,
                   name: str) -> np.ndarray:
  """The checked int32 labels a conditional D needs."""
  if labels is None:
    raise ValueError(f"refiner.conditional needs the {name} images' labels")
  input_pipeline.check_labels(labels, num_classes, f"refiner: the {name} images")
  return np.asarray(labels, np.int32)


# Loop.


def train(config, workdir: str, rendered: np.ndarray, real: np.ndarray,
          grid_data: tuple[np.ndarray, np.ndarray] | None = None,
          rendered_labels: np.ndarray | None = None,
          real_labels: np.ndarray | None = None) -> RefinerState:
  """Trains (or resumes, or returns the finished) refiner; returns its state.

  `rendered`/`real` are uint8 [N, H, W, C]. With `refiner.per_class` their
  labels are needed: K refiners are trained, refiner k on class k's images
  only, and the state returned is stacked [K, ...]. Checkpoints go to
  checkpoints/refiner/<run_key>; a grid of rendered | refined pairs (from
  `grid_data` = (images, labels)) is written at every checkpoint.
  """
  cfg = config.refiner
  shape = tuple(rendered.shape[1:])
  num = num_refiners(config)
  classes = d_classes(cfg, config.data.num_classes)
  if num:
    data = (class_data(rendered, rendered_labels, num, cfg.batch_size,
                       "rendered"),
            class_data(real, real_labels, num, cfg.batch_size, "real"))
  else:
    data = (rendered, real)
    for name, images in (("rendered", rendered), ("real", real)):
      if len(images) < cfg.batch_size:
        raise image_datasets.DatasetError(
            f"refiner: {len(images)} {name} images, fewer than "
            f"config.refiner.batch_size={cfg.batch_size}")
    if classes:
      data = tuple((images, checked_labels(labels, classes, name))
                   for images, labels, name in (
                       (rendered, rendered_labels, "rendered"),
                       (real, real_labels, "real")))
  mngr = store.manager(paths.refiner_checkpoints(workdir, run_key(config)))
  meta = store_meta(config)
  state = store.restore_latest(
      mngr, stored(abstract_state(cfg, shape, num, classes)), meta)
  if state is not None:
    state = from_stored(state)
  else:
    key = jax.random.fold_in(jax.random.key(config.seed), 21)
    state = (create_states(cfg, shape, key, num) if num
             else create_state(cfg, shape, key, classes))
  start = step = steps_done(state)
  total = total_steps(cfg)
  if start:
    logging.info("refiner: resuming from step %d of %d", start, total)
  if start >= total:
    return state
  chunks = make_train_chunks(cfg, num, classes)
  data = jax.device_put(data)
  log = metrics_log.MetricsLog(workdir, paths.REFINER_METRICS)
  t0 = time.time()
  with preemption.StopSignal() as stop:
    while step < total:
      phase, phase_end = phase_at(cfg, step)
      n = min(phase_end - step, train_loop.next_chunk(
          step, total, [cfg.log_every, cfg.checkpoint_every]))
      state, metrics = chunks[phase](
          state, *data, n, stop=lambda: stop.requested is not None)
      step = steps_done(state)
      metrics = jax.device_get(metrics)
      if num:
        bad = gan_train.nonfinite_gans(
            metrics, jax.device_get(class_params_finite(state)))
        where = f"refiner(s) of class(es) {bad}" if bad else None
      else:
        metrics = {k: float(v) for k, v in metrics.items()}
        finite = (all(np.isfinite(list(metrics.values())))
                  and bool(params_finite(state)))
        where = None if finite else "refiner"
      if where:
        log.close()
        raise NonFiniteError(
            f"{where} became non-finite (NaN/inf loss or parameters) by step "
            f"{step} ({phase}); stopped, the last finite checkpoint is kept. "
            "Lower config.refiner.learning_rate or change config.seed, then "
            "rerun.")
      if step % cfg.log_every == 0 or step == total:
        log.write(step, metrics)
        mean = {k: float(np.mean(v)) for k, v in metrics.items()}
        rate = (step - start) / max(time.time() - t0, 1e-9)
        logging.info(
            "refiner step %d/%d (%d%%, %s) r_loss %.3f (adv %.3f, l1 %.4f) "
            "d_loss %.3f D(real) %.2f D(refined) %.2f%s | %.1f steps/s, "
            "eta %.0fs", step, total, 100 * step // total, phase,
            mean["r_loss"], mean["r_adv"], mean["r_l1"], mean["d_loss"],
            mean["d_real"], mean["d_fake"],
            f" (mean of {num} class refiners)" if num else "", rate,
            (total - step) / max(rate, 1e-9))
      if step % cfg.checkpoint_every == 0 or step == total or stop.requested:
        store.save(mngr, step, stored(state), meta)
        if grid_data is not None:
          grid = pairs_grid(cfg, refining_params(state), *grid_data,
                            num or int(grid_data[1].max()) + 1,
                            cfg.grid_per_class)
          image_grid.save_grid(paths.refiner_samples(workdir, step), grid)
          log.write_images(step, {"refined_pairs": image_grid.grid(grid)[None]})
      if stop.requested:
        log.close()
        raise preemption.Preempted(
            f"{stop.requested} at refiner step {step} of {total}: checkpoint "
            "saved; rerun the same command to resume")
  log.close()
  return state


def refine(config, workdir: str) -> str:
  """The refine stage: trains R (or, per_class, one R per class) on the
  procedural source against the real training split, then writes the source
  `refined` (each rendered image refined by its R, with its label) and
  samples/refined_pairs.png."""
  rendered, labels = image_datasets.load_written(
      paths.source_dir(workdir, "procedural"), "train")
  rendered = input_pipeline.fit_images(rendered, config.data.image_size,
                                       config.data.channels)
  real, real_labels = input_pipeline.load_split(config.data,
                                                config.data.train_split)
  k = config.data.num_classes
  state = train(config, workdir, rendered, real, (rendered, labels),
                rendered_labels=labels, real_labels=real_labels)
  cfg = config.refiner
  params = refining_params(state)
  grid = pairs_grid(cfg, params, rendered, labels, k, cfg.grid_per_class)
  image_grid.save_grid(paths.refined_pairs(workdir), grid)
  stamp = {"refiner": run_key(config), "refiner_step": steps_done(state),
           "num_images": int(len(labels))}
  return sources.store_source(
      workdir, "refined", stamp,
      lambda: (refine_labelled(cfg, params, rendered, labels), labels),
      k, config.gan.grid_per_class)
