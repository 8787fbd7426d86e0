"""The unstacked layout: a train chunk whose steps carry K GANs as K
separate states (`unroll`), converted from and to the stacked state once per
chunk, so each step updates K sets of buffers in place instead of slicing
and re-stacking every parameter and Adam moment."""

from __future__ import annotations

from typing import Any, Callable

import jax

from gansynth.gan import train_loop


def repeat_step_unstacked(step_fn: Callable,
                          metric_shapes: dict[str, tuple[int, ...]],
                          to_carried: Callable,
                          from_carried: Callable) -> Callable:
  """train_loop.repeat_step for a step_fn that carries another layout:
  `to_carried` converts the state given to it (jitted, once per chunk; the
  state given is freed, as a donation would), `from_carried` converts back,
  and the state returned keeps the shardings of the one given. The chunk's
  `.step` is the compiled step and `.to_carried` the conversion (the state as
  `.step` carries it)."""
  inner = train_loop.repeat_step(step_fn, metric_shapes)
  # Not donated: the layouts' buffers differ in shape, so none could be reused.
  to_carried, from_carried = jax.jit(to_carried), jax.jit(from_carried)

  def chunk(state: Any, *args_and_num_steps, stop=lambda: False):
    shardings = [x.sharding for x in jax.tree.leaves(state)]
    given, state = state, to_carried(state)
    release(given, keep=state)
    del given
    state, metrics = inner(state, *args_and_num_steps, stop=stop)
    state = from_carried(state)
    if [x.sharding for x in jax.tree.leaves(state)] != shardings:
      state = jax.tree.unflatten(jax.tree.structure(state), jax.device_put(
          jax.tree.leaves(state), shardings))
    return state, metrics

  chunk.step = inner.step
  chunk.to_carried = to_carried
  return chunk


def release(tree: Any, keep: Any) -> None:
  """Frees the buffers of `tree`'s arrays that `keep` does not share.

  What a donation does, for a copy into another layout (buffers of other
  shapes cannot be donated): without it the chunk would hold the state
  twice.
  """
  def arrays(t):
    return [x for x in jax.tree.leaves(t)
            if isinstance(x, jax.Array) and not x.is_deleted()]

  def buffers(x):
    return {s.data.unsafe_buffer_pointer() for s in x.addressable_shards}
  kept = set().union(*map(buffers, arrays(keep)))
  for x in arrays(tree):
    if not buffers(x) & kept:
      x.delete()
