"""Generator, discriminator and classifier as pure flax.linen modules.

Two GAN families, chosen by ``config.gan.architecture``:
  * ``study``: the SVHN study's nets. Generator = dense + three upsampling +
    three convolutions; discriminator = three convolutions + three poolings +
    one dense.
  * ``dcgan``: Radford et al.'s strided DCGAN (5x5 kernels, stride 2, batch
    norm, ReLU in G and leaky ReLU in D), as used for MNIST and CelebA.
The classifier is the study's ConvNet: six convolutions, three poolings, one
dense layer. Resolution and channels come from the config; images are square.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gansynth import matmul_conv

ARCHITECTURES = ("study", "dcgan")
DTYPES = ("float32", "bfloat16")
# One GAN per class, one class-conditional GAN, or one unconditional GAN.
CONDITIONING = ("per_class", "conditional", "unconditional")
BN_MOMENTUM = 0.9


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max pooling, stride 2, "SAME" (nn.max_pool's numbers), NHWC.

  Written as a max over reshaped axes: nn.max_pool differentiates through
  select-and-scatter, which under a vmap over the GAN axis becomes gathers
  and scatters over index arrays; a max over axes differentiates elementwise
  (XLA:CPU, ten study GANs: one step 7.1 -> 4.6 s under the profiler). At exact ties the gradient is
  shared among the tied inputs (nn.max_pool gives it to one): both are
  gradients of the same function. The gradient is jnp's own, computed in
  two passes by `_max_2x2` (see there).
  """
  pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2  # "SAME" pads at the end
  if pad_h or pad_w:
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)),
                constant_values=-jnp.inf)
  return _max_2x2(x)


def _windows_2x2(x: jnp.ndarray) -> jnp.ndarray:
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _max_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """Max over 2x2 windows of an even-sized NHWC array.

  The custom VJP is the gradient jnp's max gives (shared equally at ties),
  written as one count and one select: autodiff of the max materialises the
  tie mask as floats and divides in separate passes. With the study D's
  pooling before its activation, a `conv_unroll` step of ten study GANs on
  the 2-core CPU went 3.95 -> 3.67 s and 4.07 -> 3.87 s (two A/B runs, best
  of 4-5); the classifier's step (plain jit) did not change.
  """
  return _windows_2x2(x).max(axis=(2, 4))


def _max_2x2_fwd(x):
  y = _max_2x2(x)
  return y, (x, y)


def _max_2x2_bwd(residuals, g):
  x, y = residuals
  hit = _windows_2x2(x) == y[:, :, None, :, None]
  share = g / hit.sum(axis=(2, 4)).astype(g.dtype)
  return (jnp.where(hit, share[:, :, None, :, None], 0).reshape(x.shape),)


_max_2x2.defvjp(_max_2x2_fwd, _max_2x2_bwd)


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
  """Shared fields: how convolutions are computed, the compute dtype, and
  the number of classes of a class-conditional net (0: unconditional; the
  net then takes no labels)."""
  conv: str = "lax"
  dtype: Any = jnp.float32
  num_classes: int = 0

  def layer(self, cls, *args, upsample: bool = False, **kwargs):
    """cls(*args, **kwargs); with `upsample`, a 3x3 nn.Conv that convolves
    its input upsampled 2x (nearest), computed as one transposed conv."""
    if cls is nn.Conv:
      conv = matmul_conv.conv_function(self.conv)
      kwargs["conv_general_dilated"] = (matmul_conv.upsampling(conv)
                                        if upsample else conv)
    return cls(*args, dtype=self.dtype, **kwargs)

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
    layer = self.layer(cls, *args, **kwargs)
    if not getattr(self, "spectral_norm", False):
      return layer
    return lambda x: nn.SpectralNorm(layer)(x, update_stats=train)

  def batch_norm(self, x, train: bool, labels=None):
    """Batch norm; with `labels` (and `num_classes`), class-conditional:
    normalised without its own scale and offset, then scaled and shifted by
    per-class gamma and beta looked up in embeddings (de Vries et al. 2017;
    Miyato & Koyama 2018), gamma starting at 1 and beta at 0."""
    if labels is None:
      return self.layer(nn.BatchNorm, use_running_average=not train,
                        momentum=BN_MOMENTUM)(x)
    x = self.layer(nn.BatchNorm, use_running_average=not train,
                   momentum=BN_MOMENTUM, use_scale=False, use_bias=False)(x)
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
    x = self.layer(nn.Dense, base * base * 4 * self.width, use_bias=False)(z)
    x = x.reshape(z.shape[0], base, base, 4 * self.width)
    x = nn.relu(self.batch_norm(x, train, labels))
    features = (2 * self.width, self.width, self.channels)
    for i, f in enumerate(features):
      last = i == len(features) - 1
      # Upsampling (nearest, 2x) is folded into the convolution after it.
      x = self.layer(nn.Conv, f, (3, 3), use_bias=last, upsample=i < n_up)(x)
      if not last:
        x = nn.relu(self.batch_norm(x, train, labels))
    return jnp.tanh(x).astype(jnp.float32)


class StudyDiscriminator(_GANModule):
  """image -> 3 x (conv, max-pool) -> dense -> one logit.

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
      # Pooling first: max commutes with the (monotone) activation, which
      # then runs on a quarter of the values.
      x = max_pool_2x2(self.d_layer(nn.Conv, f, (3, 3), train=train)(x))
      x = nn.leaky_relu(x, 0.2)
    if self.mbstd:
      x = minibatch_std(x)
    return self.projection_logit(x.reshape(x.shape[0], -1), labels, train)


class DCGANGenerator(_GANModule):
  """Radford et al.: z -> dense -> strided 5x5 transposed convs -> tanh.

  A transposed convolution (nn.ConvTranspose, "SAME", stride 2) is written
  as the convolution it stands for, an input-dilated nn.Conv under the same
  parameter name, so that `conv` decides how it is computed.
  """
  image_size: int = 32
  channels: int = 3
  width: int = 64

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    labels = self.check_labels(labels)
    n_up = num_doublings(self.image_size, 4)
    base = self.image_size // 2 ** n_up
    top = self.width * 2 ** (n_up - 1)
    x = self.layer(nn.Dense, base * base * top, use_bias=False)(z)
    x = x.reshape(z.shape[0], base, base, top)
    x = nn.relu(self.batch_norm(x, train, labels))
    padding = matmul_conv.conv_transpose_padding((5, 5), (2, 2))
    for i in range(n_up):
      last = i == n_up - 1
      f = self.channels if last else top // 2 ** (i + 1)
      x = self.layer(nn.Conv, f, (5, 5), padding=padding, input_dilation=2,
                     use_bias=last, name=f"ConvTranspose_{i}")(x)
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
  common = dict(conv=gan_config.conv, dtype=jnp.dtype(gan_config.dtype),
                num_classes=num_classes)
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
