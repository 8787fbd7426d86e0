"""Pieces shared by the GAN and classifier training loops."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def repeat_step(step_fn: Callable, metric_shapes: dict[str, tuple[int, ...]]
                ) -> Callable:
  """Lifts step_fn(state, *args) -> (state, metrics) to a chunk of steps.

  The returned fn(state, *args, num_steps) runs `num_steps` steps in one
  `lax.fori_loop` (a traced count: every chunk length shares one compile)
  and returns the mean of each metric over the chunk.
  """
  def chunk(state: Any, *args_and_num_steps):
    *args, num_steps = args_and_num_steps

    def body(_, carry):
      state, sums = carry
      state, metrics = step_fn(state, *args)
      return state, jax.tree.map(jnp.add, sums, metrics)

    zeros = {n: jnp.zeros(s) for n, s in metric_shapes.items()}
    state, sums = jax.lax.fori_loop(0, num_steps, body, (state, zeros))
    return state, jax.tree.map(lambda s: s / num_steps, sums)

  return chunk


def next_chunk(step: int, total: int, intervals: list[int]) -> int:
  """Steps to run until the end or the next multiple of any interval > 0."""
  return min([total - step] + [i - step % i for i in intervals if i > 0])
