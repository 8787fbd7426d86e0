"""Scale-out: the K GANs' state and data sharded over devices (and hosts).

The GANs are independent, so the stacked GAN axis is the natural one to
split: mesh axis "gan" holds K/gan GANs per device and the same jitted step
runs on all devices without communication (XLA partitions it from the input
shardings). Devices beyond a divisor of K form the "batch" axis, which splits
each class's stored images; the batches drawn from them are gathered.

Several processes (hosts) run the same program on their own devices: every
process places its shards of the state (`place`), and whatever the host
reads back (metrics, sample grids) is gathered from all of them (`to_host`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.experimental import multihost_utils
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

AXES = ("gan", "batch")


def initialize(config) -> None:
  """Joins the multi-host job (before any other JAX call) if configured and
  not joined yet."""
  if config.mesh.distributed and not jax.distributed.is_initialized():
    m = config.mesh
    explicit = dict(coordinator_address=m.coordinator_address,
                    num_processes=m.num_processes, process_id=m.process_id)
    jax.distributed.initialize(**(explicit if m.coordinator_address else {}))


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
  return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, spec_of(x))),
                      tree)


def like(tree: Any, reference: Any) -> Any:
  """`tree`'s values (host or device arrays) laid out as `reference`'s."""
  return jax.tree.map(lambda x, ref: _put(x, ref.sharding), tree, reference)


def _put(x, sharding):
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  full = np.asarray(jax.device_get(x))
  return jax.make_array_from_callback(full.shape, sharding,
                                      lambda idx: full[idx])


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


def is_primary() -> bool:
  """Whether this process writes the run's files (logs, grids, results)."""
  return jax.process_index() == 0


def to_host(tree: Any) -> Any:
  """Device arrays as numpy arrays of their global values.

  One process: jax.device_get. Several: an array split over hosts has no
  process holding all of it, so it is gathered (a collective: every process
  must call this at the same point).
  """
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def any_process(flag: bool) -> bool:
  """Whether `flag` is set in any process (a collective, as `to_host`);
  e.g. a stop signal that reached one host stops all of them together."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))
