"""GAN losses on discriminator logits, chosen by ``config.gan.loss``.

  * ``bce``: the non-saturating binary cross-entropy of Goodfellow et al. and
    DCGAN: D minimises BCE(real=1, fake=0), G minimises BCE(fake=1).
  * ``l1``: the SVHN study's loss on a sigmoid output: D minimises the
    absolute error |X1 - X| between its outputs and the labels (1 real,
    0 fake), and G minimises 1 - D(G(z)).
  * ``hinge``: the hinge loss of Lim & Ye and SNGAN/BigGAN: D minimises
    relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("bce", "l1", "hinge")


def discriminator_loss(kind: str, real_logits, fake_logits):
  if kind == "bce":
    return (jnp.mean(jax.nn.softplus(-real_logits)) +
            jnp.mean(jax.nn.softplus(fake_logits)))
  if kind == "l1":
    return (jnp.mean(jnp.abs(1.0 - jax.nn.sigmoid(real_logits))) +
            jnp.mean(jnp.abs(jax.nn.sigmoid(fake_logits))))
  if kind == "hinge":
    return (jnp.mean(jax.nn.relu(1.0 - real_logits)) +
            jnp.mean(jax.nn.relu(1.0 + fake_logits)))
  raise ValueError(f"config.gan.loss={kind!r}; choose one of {LOSSES}")


def generator_loss(kind: str, fake_logits):
  if kind == "bce":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  if kind == "l1":
    return jnp.mean(1.0 - jax.nn.sigmoid(fake_logits))
  if kind == "hinge":
    return -jnp.mean(fake_logits)
  raise ValueError(f"config.gan.loss={kind!r}; choose one of {LOSSES}")


def r1_penalty(d_fn, real: jax.Array) -> jax.Array:
  """R1 (Mescheder et al. 2018): mean over the batch of |grad_x D(x)|^2 on
  real images; the loss adds gamma / 2 times it (StyleGAN2's form)."""
  grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(real)
  return jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))
