"""Differentiable augmentation of everything D sees (DiffAugment).

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training": the same family of random transforms T is applied to real and
fake images, in D's update and in G's, and G's gradient flows through T. D
then cannot memorise a small training set, and G is not taught to produce
augmented images (T is never applied to what G is scored on alone).

Policies (`config.gan.diffaugment`, a comma list) follow the reference code
(mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py), on NHWC images in
[-1, 1]:
  * ``color``: random brightness, saturation and contrast per image;
  * ``translation``: an integer shift of up to 1/8 of the side, zero-filled;
  * ``cutout``: a zeroed square of half the side at a random place.
`strength` scales every magnitude; at 0 each policy is the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")


def color(key: jax.Array, x: jax.Array, strength: float = 1.0) -> jax.Array:
  """Brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] per image."""
  kb, ks, kc = jax.random.split(key, 3)
  n = x.shape[0]
  shape = (n, 1, 1, 1)
  x = x + strength * (jax.random.uniform(kb, shape) - 0.5)
  mean_c = x.mean(axis=-1, keepdims=True)
  x = (x - mean_c) * (1 + strength * (jax.random.uniform(ks, shape) * 2 - 1)
                      ) + mean_c
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (1 + strength * (jax.random.uniform(kc, shape) - 0.5)
                       ) + mean


def random_shift(key: jax.Array, x: jax.Array, max_shift: int,
                 mode: str = "constant") -> jax.Array:
  """Shifts each NHWC image by a random integer (dy, dx) in
  [-max_shift, max_shift]; the border is filled per `mode` (jnp.pad)."""
  if max_shift <= 0:
    return x
  n, h, w, c = x.shape
  ky, kx = jax.random.split(key)
  dy = jax.random.randint(ky, (n,), -max_shift, max_shift + 1)
  dx = jax.random.randint(kx, (n,), -max_shift, max_shift + 1)
  m = max_shift
  padded = jnp.pad(x, ((0, 0), (m, m), (m, m), (0, 0)), mode=mode)
  return jax.vmap(lambda im, a, b: jax.lax.dynamic_slice(
      im, (m - a, m - b, 0), (h, w, c)))(padded, dy, dx)


def random_flip(key: jax.Array, x: jax.Array) -> jax.Array:
  """Mirrors each NHWC image left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
  return jnp.where(flip, x[:, :, ::-1], x)


def translation(key: jax.Array, x: jax.Array, strength: float = 1.0,
                ratio: float = 0.125) -> jax.Array:
  """Shifts each image by up to `ratio * strength` of its side, zero-filled."""
  return random_shift(key, x, int(x.shape[1] * ratio * strength + 0.5))


def cutout(key: jax.Array, x: jax.Array, strength: float = 1.0,
           ratio: float = 0.5) -> jax.Array:
  """Zeroes a square of `ratio * strength` of the side in each image."""
  n, h, w, _ = x.shape
  size_h, size_w = int(h * ratio * strength + 0.5), int(w * ratio * strength
                                                        + 0.5)
  if size_h == 0 or size_w == 0:
    return x
  ky, kx = jax.random.split(key)
  # Centre of the square, as in the reference: the square may overhang.
  cy = jax.random.randint(ky, (n, 1, 1), 0, h + (1 - size_h % 2))
  cx = jax.random.randint(kx, (n, 1, 1), 0, w + (1 - size_w % 2))
  rows = jnp.arange(h)[None, :, None]
  cols = jnp.arange(w)[None, None, :]
  inside = ((rows >= cy - size_h // 2) & (rows < cy - size_h // 2 + size_h) &
            (cols >= cx - size_w // 2) & (cols < cx - size_w // 2 + size_w))
  return jnp.where(inside[..., None], 0.0, x)


_APPLY = {"color": color, "translation": translation, "cutout": cutout}


def parse(policy: str) -> tuple[str, ...]:
  """"color, translation" -> ("color", "translation"); rejects unknown."""
  names = tuple(p.strip() for p in policy.split(",") if p.strip())
  unknown = [p for p in names if p not in POLICIES]
  if unknown:
    raise ValueError(f"unknown DiffAugment policy {unknown}; choose from "
                     f"{POLICIES}")
  return names


def diff_augment(key: jax.Array, x: jax.Array, policy: str,
                 strength: float = 1.0) -> jax.Array:
  """Applies the policies in order, each with its own key from `key`."""
  for i, name in enumerate(parse(policy)):
    x = _APPLY[name](jax.random.fold_in(key, i), x, strength)
  return x
