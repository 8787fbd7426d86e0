"""Pieces shared by the GAN and classifier training loops."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def repeat_step(step_fn: Callable, metric_shapes: dict[str, tuple[int, ...]],
                enter: Callable | None = None,
                leave: Callable | None = None) -> Callable:
  """Lifts step_fn(state, *args) -> (state, metrics) to a chunk of steps.

  The returned fn(state, *args, num_steps) jit-compiles the step once (state
  buffers donated) and dispatches it `num_steps` times from Python, summing
  metrics on the device; it returns their mean over the chunk. `stop()`
  is checked between steps, so a signal ends a long chunk early. Dispatch is
  asynchronous, so the host loop overlaps device work. (A `lax.fori_loop`
  over the step was measured 2-20x slower on XLA:CPU: convolutions inside a
  while-loop body lose their fast path.) `enter`/`leave` convert the state
  to and from the layout step_fn carries, once per chunk (e.g. K GANs held
  apart, gan_axis.split/join); the state returned keeps the shardings of
  the one given. Either way the state given is consumed: its buffers are
  donated to the step, or freed once `enter` has copied them.
  """
  step = jax.jit(step_fn, donate_argnums=0)
  add = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b), donate_argnums=0)
  # Not donated: the layouts' buffers differ in shape, so none could be reused.
  enter = jax.jit(enter) if enter else (lambda state: state)
  leave = leave and jax.jit(leave)

  def chunk(state: Any, *args_and_num_steps, stop=lambda: False):
    *args, num_steps = args_and_num_steps
    shardings = [x.sharding for x in jax.tree.leaves(state)] if leave else None
    given, state = state, enter(state)
    if leave:
      release(given, keep=state)
    del given
    sums = {n: jnp.zeros(s) for n, s in metric_shapes.items()}
    done = 0
    while done < int(num_steps) and not (done and stop()):
      state, metrics = step(state, *args)
      sums = add(sums, metrics)
      done += 1
    if leave:
      state = leave(state)
      if [x.sharding for x in jax.tree.leaves(state)] != shardings:
        state = jax.tree.unflatten(jax.tree.structure(state), jax.device_put(
            jax.tree.leaves(state), shardings))
    return state, jax.tree.map(lambda s: s / done, sums)

  chunk.step = step  # the compiled step, e.g. to count compilations
  chunk.enter = enter  # the state as `step` carries it
  return chunk


def release(tree: Any, keep: Any) -> None:
  """Frees the buffers of `tree`'s arrays that `keep` does not share.

  What a donation does, for a copy into another layout (buffers of other
  shapes cannot be donated): without it the chunk would hold the state
  twice, e.g. 1 GB more for configs/bench_svhn.py under `unroll`.
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


def next_chunk(step: int, total: int, intervals: list[int]) -> int:
  """Steps to run until the end or the next multiple of any interval > 0."""
  return min([total - step] + [i - step % i for i in intervals if i > 0])
