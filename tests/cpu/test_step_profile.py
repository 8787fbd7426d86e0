"""step_profile: kinds of ops read from HLO text, wall time split among them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth.cpu import step_profile

HLO = """HloModule jit_f, entry_computation_layout={(f32[4,4]{1,0})->f32[4,4]{1,0}}

%fused_dot (p0: f32[4,4], p1: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4]{1,0} parameter(0)
  %p1 = f32[4,4]{1,0} parameter(1)
  ROOT %dot.1 = f32[4,4]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_move (p0: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4]{1,0} parameter(0)
  %transpose.3 = f32[4,4]{0,1} transpose(%p0), dimensions={1,0}
  ROOT %copy.4 = f32[4,4]{1,0} copy(%transpose.3)
}

%fused_add (p0: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4]{1,0} parameter(0)
  ROOT %add.5 = f32[4,4]{1,0} add(%p0, %p0), metadata={op_name="jit(f)/add"}
}

ENTRY %main.9 (x: f32[4,4]) -> f32[4,4] {
  %x = f32[4,4]{1,0} parameter(0)
  %ynn_fusion = f32[4,4]{1,0} fusion(%x, %x), kind=kCustom, calls=%fused_dot
  %copy_fusion = f32[4,4]{1,0} fusion(%ynn_fusion), kind=kLoop, calls=%fused_move
  %conv.7 = f32[1,4,4,1]{3,2,1,0} convolution(%x, %x), window={size=1x1}
  %loop = (s32[], f32[4,4]{1,0}) while(%t), condition=%c, body=%b
  %orphan = f32[4,4]{1,0} fusion(%x), kind=kLoop, calls=%not_in_text
  ROOT %add_fusion = f32[4,4]{1,0} fusion(%copy_fusion), kind=kLoop, calls=%fused_add
}
"""


def test_op_kinds_classify_fusions_by_what_they_compute():
  kinds = step_profile.op_kinds(HLO)
  assert kinds["ynn_fusion"] == "matmul"
  assert kinds["copy_fusion"] == "data movement"
  assert kinds["add_fusion"] == "element-wise"
  assert kinds["conv.7"] == "convolution"
  assert kinds["dot.1"] == "matmul"  # inside a fusion, still named
  assert "loop" not in kinds  # a container's event would hide its ops
  assert kinds["orphan"] == "element-wise"  # body unknown: not "data movement"


def _event(name, ts, dur):
  return {"ph": "X", "name": name, "ts": ts, "dur": dur}


def test_wall_shares_split_overlaps_and_count_gaps_as_untraced():
  kinds = {"a": "matmul", "b": "data movement", "c": "element-wise"}
  events = [_event("a", 0, 100),  # alone 0-50, with b 50-100
            _event("b", 50, 100),  # alone 100-150
            _event("c", 200, 20),  # after a 50 us gap
            _event("ThunkExecutor::Execute", 0, 1000),  # not an op: ignored
            {"ph": "i", "name": "a", "ts": 10}]  # not a duration event
  shares = step_profile.wall_shares(events, kinds)
  us = {k: round(v * 1e6, 6) for k, v in shares.items()}
  assert us == {"matmul": 75, "data movement": 75, "element-wise": 20,
                "convolution": 0, "untraced": 50}
  assert step_profile.wall_shares([], kinds)["matmul"] == 0


def test_profile_call_traces_a_real_compiled_function():
  @jax.jit
  def f(a, b):
    return jnp.tanh(a @ b).T + 1.0

  a = jax.random.normal(jax.random.key(0), (512, 512))
  shares, out = step_profile.profile_call(f, a, a)
  np.testing.assert_allclose(out, f(a, a), rtol=1e-5)
  assert set(shares) == set(step_profile.KINDS)
  assert shares["matmul"] > 0, shares  # the dot's event was found and kinded
  assert sum(shares.values()) > 0


def test_profile_call_rejects_an_unjitted_function():
  with pytest.raises(TypeError, match="jax.jit"):
    step_profile.profile_call(lambda a: a, jnp.ones(3))
