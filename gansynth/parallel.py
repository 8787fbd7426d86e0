"""Scale-out: the K GANs' state and data sharded over devices (and hosts).

The GANs are independent, so the stacked GAN axis is the natural one to
split: mesh axis "gan" holds K/gan GANs per device and the same jitted step
runs on all devices without communication (XLA partitions it from the input
shardings). Devices beyond a divisor of K form the "batch" axis, which splits
each class's stored images; the batches drawn from them are gathered.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

AXES = ("gan", "batch")


def initialize(config) -> None:
  """Joins the multi-host job (before any other JAX call) if configured."""
  if config.mesh.distributed:
    jax.distributed.initialize()


def make_mesh(config, num_gans: int) -> jax.sharding.Mesh:
  """("gan", "batch") mesh over all devices; "gan" must divide K."""
  n = jax.device_count()
  gan = config.mesh.gan or math.gcd(num_gans, n)
  if num_gans % gan or n % gan:
    raise ValueError(f"config.mesh.gan={gan} must divide both K={num_gans} "
                     f"and the {n} devices")
  return jax.make_mesh((gan, n // gan), AXES,
                       axis_types=(AxisType.Auto, AxisType.Auto))


def place(tree: Any, mesh: jax.sharding.Mesh, spec_of) -> Any:
  """Puts every leaf (host or device array) on `mesh` as spec_of(leaf).

  One process: jax.device_put (device arrays move between devices, not via
  the host). Several: each process supplies its addressable shards from its
  full copy.
  """
  def put(x):
    sharding = NamedSharding(mesh, spec_of(x))
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    full = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(full.shape, sharding,
                                        lambda idx: full[idx])
  return jax.tree.map(put, tree)


def gan_spec(x) -> P:
  """The stacked GAN axis split over "gan"; scalars replicated."""
  return P("gan") if np.ndim(x) else P()


def shard(mesh: jax.sharding.Mesh, state: Any, data: Any) -> tuple[Any, Any]:
  """The train state and the class data, laid out on `mesh`.

  Class data [K, N, ...] split N over "batch" when it divides evenly.
  """
  split = lambda x: np.ndim(x) > 1 and x.shape[1] % mesh.shape["batch"] == 0
  return (place(state, mesh, gan_spec),
          place(data, mesh, lambda x: P("gan", "batch") if split(x)
                else P("gan")))
