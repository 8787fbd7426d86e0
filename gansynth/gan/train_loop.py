"""Pieces shared by the GAN and classifier training loops."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def repeat_step(step_fn: Callable,
                metric_shapes: dict[str, tuple[int, ...]]) -> Callable:
  """Lifts step_fn(state, *args) -> (state, metrics) to a chunk of steps.

  The returned fn(state, *args, num_steps) jit-compiles the step once (state
  buffers donated) and dispatches it `num_steps` times from Python, summing
  metrics on the device; it returns their mean over the chunk. `stop()`
  is checked between steps, so a signal ends a long chunk early. Dispatch is
  asynchronous, so the host loop overlaps device work. (A `lax.fori_loop`
  over the step was measured slower on XLA:CPU: docs/benchmarks.md.)
  """
  step = jax.jit(step_fn, donate_argnums=0)
  add = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b), donate_argnums=0)

  def chunk(state: Any, *args_and_num_steps, stop=lambda: False):
    *args, num_steps = args_and_num_steps
    sums = {n: jnp.zeros(s) for n, s in metric_shapes.items()}
    done = 0
    while done < int(num_steps) and not (done and stop()):
      state, metrics = step(state, *args)
      sums = add(sums, metrics)
      done += 1
    return state, jax.tree.map(lambda s: s / done, sums)

  chunk.step = step  # the compiled step, e.g. to count compilations
  return chunk


def next_chunk(step: int, total: int, intervals: list[int]) -> int:
  """Steps to run until the end or the next multiple of any interval > 0."""
  return min([total - step] + [i - step % i for i in intervals if i > 0])
