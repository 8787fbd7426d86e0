"""How one GAN's step is mapped over the stacked K-GAN axis.

`vmap` is the natural expression of "K GANs at once"; on some backends
(XLA:CPU) a vmap over per-GAN convolution weights becomes a grouped
convolution whose gradient is slow, so `unroll` traces the K steps one after
the other inside the same jit instead. Both give the same numbers.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

STRATEGIES = ("vmap", "unroll")


def map_over_gans(fn: Callable, strategy: str) -> Callable:
  """Lifts fn(gan, images, count, step) to the stacked K-GAN axis.

  `vmap` is the natural expression; `unroll` traces the K steps one after the
  other inside the same jit, which some backends run faster (see bench.py).
  Both give the same numbers.
  """
  if strategy == "vmap":
    return jax.vmap(fn, in_axes=(0, 0, 0, None))
  if strategy == "unroll":
    def unrolled(gans, images, counts, step):
      outs = [fn(jax.tree.map(lambda x: x[k], gans), images[k], counts[k], step)
              for k in range(counts.shape[0])]
      return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return unrolled
  raise ValueError(f"config.gan.strategy={strategy!r}; choose one of "
                   f"{STRATEGIES}")
