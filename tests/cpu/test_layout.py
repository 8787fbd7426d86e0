"""The unstacked layout: converted once per chunk, the given state freed."""

import jax.numpy as jnp
import numpy as np

from gansynth.cpu import layout


def counting_step(state, increment):
  return state + increment, {"value": state.astype(jnp.float32)}


def test_layout_changes_once_per_chunk():
  """The steps carry (state, steps taken); the caller sees a plain state."""
  def pair_step(pair, increment):
    value, taken = pair
    return (value + increment, taken + 1), {"value": value.astype(jnp.float32)}

  chunk = layout.repeat_step_unstacked(
      pair_step, {"value": ()}, to_carried=lambda s: (s, jnp.int32(0)),
      from_carried=lambda pair: 100 * pair[0] + pair[1])
  state, metrics = chunk(jnp.int32(0), jnp.int32(2), 4)
  assert int(state) == 100 * 8 + 4
  np.testing.assert_allclose(metrics["value"], (0 + 2 + 4 + 6) / 4)
  assert chunk.to_carried(jnp.int32(5))[0] == 5
  # The state given is consumed, as a donated one would be: freed, not held
  # twice while the chunk runs.
  given = jnp.int32(0)
  chunk(given, jnp.int32(2), 1)
  assert given.is_deleted()


def test_release_frees_only_buffers_not_kept():
  a, b = jnp.ones(3), jnp.zeros(2)
  host = np.ones(2)  # not a device array: left alone
  layout.release({"a": a, "b": b, "host": host}, keep=(b, jnp.ones(1)))
  assert a.is_deleted() and not b.is_deleted()
  np.testing.assert_array_equal(b, np.zeros(2))
