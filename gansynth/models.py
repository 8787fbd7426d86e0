"""Generator, discriminator and classifier as pure flax.linen modules.

Two GAN families, chosen by ``config.gan.architecture``:
  * ``study``: the SVHN study's nets. Generator = dense + three times
    (nearest 2x upsampling, 3x3 conv); discriminator = three times (3x3 conv,
    leaky ReLU, 2x2 max-pool) + one dense.
  * ``dcgan``: Radford et al.'s strided DCGAN (5x5 kernels, stride 2, batch
    norm, ReLU in G and leaky ReLU in D), as used for MNIST and CelebA.
The classifier is the study's ConvNet: six convolutions, three poolings, one
dense layer. Resolution and channels come from the config; images are square.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

ARCHITECTURES = ("study", "dcgan")
DTYPES = ("float32", "bfloat16")
# One GAN per class, one class-conditional GAN, or one unconditional GAN.
CONDITIONING = ("per_class", "conditional", "unconditional")
BN_MOMENTUM = 0.9


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max pooling, stride 2, "SAME" (NHWC)."""
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")


def upsample_2x(x: jnp.ndarray) -> jnp.ndarray:
  """Nearest-neighbour 2x upsampling (NHWC)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def num_doublings(image_size: int, max_doublings: int) -> int:
  """How many x2 upsamplings reach `image_size` from an integer base size."""
  n = 0
  while n < max_doublings and image_size % (2 ** (n + 1)) == 0:
    n += 1
  return n


def minibatch_std(x: jnp.ndarray, group_size: int = 4) -> jnp.ndarray:
  """Appends one feature map: the std of features across groups of samples.

  StyleGAN's minibatch standard deviation (Karras et al. 2018): D sees how
  varied a batch is, so a generator that collapses to a few modes is easy to
  tell from real data. Groups take every (N / group)-th sample.
  """
  n = x.shape[0]
  g = min(group_size, n)
  while n % g:
    g -= 1
  y = x.astype(jnp.float32).reshape((g, n // g) + x.shape[1:])
  y = jnp.sqrt(jnp.var(y, axis=0) + 1e-8).mean(axis=(1, 2, 3))  # [n // g]
  y = jnp.tile(y, g)[:, None, None, None]
  y = jnp.broadcast_to(y, x.shape[:3] + (1,)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


class _GANModule(nn.Module):
  """Shared fields: the compute dtype, and the number of classes of a
  class-conditional net (0: unconditional; the net then takes no labels)."""
  dtype: Any = jnp.float32
  num_classes: int = 0

  def check_labels(self, labels):
    """The labels a conditional net needs (None for an unconditional one)."""
    if bool(self.num_classes) != (labels is not None):
      raise ValueError(f"{type(self).__name__} with num_classes="
                       f"{self.num_classes} called with"
                       f"{'out' if labels is None else ''} labels")
    return labels

  def d_layer(self, cls, *args, train: bool, **kwargs):
    """A discriminator layer, spectrally normalised if `spectral_norm`
    (Miyato et al. 2018; its power-iteration vector is carried in
    `batch_stats` and advanced only when training)."""
    layer = cls(*args, dtype=self.dtype, **kwargs)
    if not getattr(self, "spectral_norm", False):
      return layer
    return lambda x: nn.SpectralNorm(layer)(x, update_stats=train)

  def batch_norm(self, x, train: bool, labels=None):
    """Batch norm; with `labels` (and `num_classes`), class-conditional:
    normalised without its own scale and offset, then scaled and shifted by
    per-class gamma and beta looked up in embeddings (de Vries et al. 2017;
    Miyato & Koyama 2018), gamma starting at 1 and beta at 0."""
    if labels is None:
      return nn.BatchNorm(use_running_average=not train,
                          momentum=BN_MOMENTUM, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                     use_scale=False, use_bias=False, dtype=self.dtype)(x)
    c = x.shape[-1]
    gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones)(
        labels)
    beta = nn.Embed(self.num_classes, c,
                    embedding_init=nn.initializers.zeros)(labels)
    return (x * gamma[:, None, None, :].astype(x.dtype)
            + beta[:, None, None, :].astype(x.dtype))

  def projection_logit(self, h, labels, train: bool):
    """D's logit from its flattened features h: dense(h), plus with `labels`
    the projection term <embed(y), h> (Miyato & Koyama 2018)."""
    out = self.d_layer(nn.Dense, 1, train=train)(h)[:, 0]
    if labels is not None:
      embed = nn.Embed(self.num_classes, h.shape[-1], name="class_projection")
      out = out + jnp.sum(embed(labels).astype(h.dtype) * h, axis=-1)
    return out.astype(jnp.float32)


class StudyGenerator(_GANModule):
  """z -> dense -> 3 x (upsample, conv) -> image in [-1, 1].

  Sizes that are not divisible by 8 (28x28) get fewer upsamplings; the last
  convolutions then run at full resolution, so there are always three.
  """
  image_size: int = 32
  channels: int = 3
  width: int = 64

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    labels = self.check_labels(labels)
    n_up = num_doublings(self.image_size, 3)
    base = self.image_size // 2 ** n_up
    # Layers followed by batch norm have no bias: BN would cancel it.
    x = nn.Dense(base * base * 4 * self.width, use_bias=False,
                 dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], base, base, 4 * self.width)
    x = nn.relu(self.batch_norm(x, train, labels))
    features = (2 * self.width, self.width, self.channels)
    for i, f in enumerate(features):
      last = i == len(features) - 1
      if i < n_up:
        x = upsample_2x(x)
      x = nn.Conv(f, (3, 3), use_bias=last, dtype=self.dtype)(x)
      if not last:
        x = nn.relu(self.batch_norm(x, train, labels))
    return jnp.tanh(x).astype(jnp.float32)


class StudyDiscriminator(_GANModule):
  """image -> 3 x (conv, leaky ReLU, max-pool) -> dense -> one logit.

  No batch norm, so D's real and fake batches stay independent. Options for
  small data: `spectral_norm` on every layer, `mbstd` (minibatch standard
  deviation before the dense layer).
  """
  width: int = 64
  spectral_norm: bool = False
  mbstd: bool = False

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    labels = self.check_labels(labels)
    for f in (self.width, 2 * self.width, 4 * self.width):
      x = self.d_layer(nn.Conv, f, (3, 3), train=train)(x)
      x = max_pool_2x2(nn.leaky_relu(x, 0.2))
    if self.mbstd:
      x = minibatch_std(x)
    return self.projection_logit(x.reshape(x.shape[0], -1), labels, train)


class DCGANGenerator(_GANModule):
  """Radford et al.: z -> dense -> strided 5x5 transposed convs -> tanh."""
  image_size: int = 32
  channels: int = 3
  width: int = 64

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    labels = self.check_labels(labels)
    n_up = num_doublings(self.image_size, 4)
    base = self.image_size // 2 ** n_up
    top = self.width * 2 ** (n_up - 1)
    x = nn.Dense(base * base * top, use_bias=False, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], base, base, top)
    x = nn.relu(self.batch_norm(x, train, labels))
    for i in range(n_up):
      last = i == n_up - 1
      f = self.channels if last else top // 2 ** (i + 1)
      x = nn.ConvTranspose(f, (5, 5), strides=(2, 2), padding="SAME",
                           use_bias=last, dtype=self.dtype)(x)
      if not last:
        x = nn.relu(self.batch_norm(x, train, labels))
    return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(_GANModule):
  """Radford et al.: strided 5x5 convs, batch norm after the first, leaky
  ReLU. With `spectral_norm` the layers are normalised instead of batch
  normed (SNGAN); `mbstd` as in StudyDiscriminator."""
  width: int = 64
  num_layers: int = 3
  spectral_norm: bool = False
  mbstd: bool = False

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    labels = self.check_labels(labels)
    for i in range(self.num_layers):
      norm = i > 0 and not self.spectral_norm
      x = self.d_layer(nn.Conv, self.width * 2 ** i, (5, 5), strides=(2, 2),
                       padding="SAME", use_bias=not norm, train=train)(x)
      if norm:
        x = self.batch_norm(x, train)
      x = nn.leaky_relu(x, 0.2)
    if self.mbstd:
      x = minibatch_std(x)
    return self.projection_logit(x.reshape(x.shape[0], -1), labels, train)


class Classifier(nn.Module):
  """The study's ConvNet: 3 x (conv, conv, max-pool), then one dense layer."""
  num_classes: int = 10
  width: int = 32

  @nn.compact
  def __call__(self, x, return_features: bool = False):
    """Logits; with `return_features`, also the flattened penultimate layer."""
    for f in (self.width, 2 * self.width, 4 * self.width):
      x = nn.relu(nn.Conv(f, (3, 3))(x))
      x = nn.relu(nn.Conv(f, (3, 3))(x))
      x = max_pool_2x2(x)
    features = x.reshape(x.shape[0], -1)
    logits = nn.Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits


def make_gan(gan_config: Any, image_size: int, channels: int,
             num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """Builds (generator, discriminator) for `config.gan`; with `num_classes`,
  class-conditional ones (conditional BN in G, a projection D)."""
  arch = gan_config.architecture
  common = dict(dtype=jnp.dtype(gan_config.dtype), num_classes=num_classes)
  d_options = dict(spectral_norm=gan_config.spectral_norm,
                   mbstd=gan_config.mbstd, **common)
  if arch == "study":
    return (StudyGenerator(image_size=image_size, channels=channels,
                           width=gan_config.g_width, **common),
            StudyDiscriminator(width=gan_config.d_width, **d_options))
  if arch == "dcgan":
    n_layers = max(1, num_doublings(image_size, 4))
    return (DCGANGenerator(image_size=image_size, channels=channels,
                           width=gan_config.g_width, **common),
            DCGANDiscriminator(width=gan_config.d_width, num_layers=n_layers,
                               **d_options))
  raise ValueError(f"config.gan.architecture={arch!r}; choose one of "
                   f"{ARCHITECTURES}")


def make_classifier(classifier_config: Any, num_classes: int) -> Classifier:
  return Classifier(num_classes, classifier_config.width)
