"""Chunks of steps: the mean of metrics, early stop, boundaries."""

import jax.numpy as jnp
import numpy as np

from gansynth import train_loop


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


def test_enter_and_leave_change_the_layout_once_per_chunk():
  """The steps carry (state, steps taken); the caller sees a plain state."""
  def pair_step(pair, increment):
    value, taken = pair
    return (value + increment, taken + 1), {"value": value.astype(jnp.float32)}

  chunk = train_loop.repeat_step(
      pair_step, {"value": ()}, enter=lambda s: (s, jnp.int32(0)),
      leave=lambda pair: 100 * pair[0] + pair[1])
  state, metrics = chunk(jnp.int32(0), jnp.int32(2), 4)
  assert int(state) == 100 * 8 + 4
  np.testing.assert_allclose(metrics["value"], (0 + 2 + 4 + 6) / 4)
  assert chunk.enter(jnp.int32(5))[0] == 5
  # The state given is consumed, as a donated one would be: freed, not held
  # twice while the chunk runs.
  given = jnp.int32(0)
  chunk(given, jnp.int32(2), 1)
  assert given.is_deleted()


def test_release_frees_only_buffers_not_kept():
  a, b = jnp.ones(3), jnp.zeros(2)
  host = np.ones(2)  # not a device array: left alone
  train_loop.release({"a": a, "b": b, "host": host}, keep=(b, jnp.ones(1)))
  assert a.is_deleted() and not b.is_deleted()
  np.testing.assert_array_equal(b, np.zeros(2))


def test_next_chunk_stops_at_every_boundary():
  assert train_loop.next_chunk(0, 1000, [100, 500, 0]) == 100
  assert train_loop.next_chunk(450, 1000, [100, 500]) == 50
  assert train_loop.next_chunk(990, 1000, [100]) == 10
