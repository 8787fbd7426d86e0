"""Chunks of steps: the mean of metrics, early stop, boundaries."""

import jax.numpy as jnp
import numpy as np

from gansynth.gan import train_loop


def counting_step(state, increment):
  return state + increment, {"value": state.astype(jnp.float32)}


def test_chunk_runs_n_steps_and_averages_metrics():
  chunk = train_loop.repeat_step(counting_step, {"value": ()})
  state, metrics = chunk(jnp.int32(0), jnp.int32(2), 4)
  assert int(state) == 8
  np.testing.assert_allclose(metrics["value"], (0 + 2 + 4 + 6) / 4)


def test_stop_ends_a_chunk_between_steps():
  chunk = train_loop.repeat_step(counting_step, {"value": ()})
  calls = []
  state, metrics = chunk(jnp.int32(0), jnp.int32(1), 50,
                         stop=lambda: calls.append(1) or len(calls) >= 3)
  assert int(state) == 3  # at least one step, then checked between steps
  np.testing.assert_allclose(metrics["value"], 1.0)


def test_next_chunk_stops_at_every_boundary():
  assert train_loop.next_chunk(0, 1000, [100, 500, 0]) == 100
  assert train_loop.next_chunk(450, 1000, [100, 500]) == 50
  assert train_loop.next_chunk(990, 1000, [100]) == 10
