"""Where one compiled call's time goes, by kind of op, from a profiler trace.

Why: images/s says how fast a step is, not what to change. Speed work
needs to know whether matrix products, XLA's own convolutions,
data movement (im2col window stacks, slices, transposes) or element-wise
ops (batch norm, activations, Adam) take the step's wall time;
`python -m gansynth.tools.bench --run=profile` prints this breakdown.

XLA:CPU records one trace event per op when the call is compiled with
`xla_cpu_enable_xprof_traceme`. Ops that run at the same time (XLA:CPU runs
independent ops concurrently) share that wall time equally. Time inside the
call when no op has an event is "untraced": ops XLA emits no event for (its
Eigen matrix products with a transposed operand were seen there) and
scheduling.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
from typing import Any, Callable, Iterable

import jax

KINDS = ("matmul", "convolution", "data movement", "element-wise",
         "untraced")
COMPILER_OPTIONS = {"xla_cpu_enable_xprof_traceme": True}
_MOVES = frozenset((
    "parameter", "constant", "copy", "transpose", "bitcast", "reshape",
    "broadcast", "slice", "dynamic-slice", "dynamic-update-slice", "pad",
    "concatenate", "reverse", "gather", "scatter", "tuple",
    "get-tuple-element", "iota"))
# Ops whose events enclose other ops' events: not leaves.
_CONTAINERS = frozenset(("while", "conditional", "call"))
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTRUCTION = re.compile(
    r"^\s+(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([a-z][\w\-]*)\((.*)$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")


def op_kinds(hlo_text: str) -> dict[str, str]:
  """Instruction name -> kind (one of KINDS but "untraced") for every op of
  an optimized HLO module's text (`compiled.as_text()`); a fusion takes the
  kind of what it computes (a dot in it makes it a matmul)."""
  opcodes: dict[str, set[str]] = collections.defaultdict(set)
  instructions = []  # (name, opcode, computation it calls)
  computation = None
  for line in hlo_text.splitlines():
    if not line.startswith(" "):
      m = _COMPUTATION.match(line)
      computation = m.group(1) if m else None
      continue
    m = _INSTRUCTION.match(line)
    if m and computation:
      name, opcode, rest = m.groups()
      opcodes[computation].add(opcode)
      called = _CALLS.search(rest)
      instructions.append((name, opcode, called and called.group(1)))

  def kind(ops: set[str]) -> str:
    if "dot" in ops:
      return "matmul"
    if "convolution" in ops:
      return "convolution"
    return "data movement" if ops <= _MOVES else "element-wise"

  # A fusion whose body was not parsed keeps its own opcode (element-wise),
  # never an empty set, which would read as data movement.
  return {name: kind(opcodes.get(called) or {opcode})
          for name, opcode, called in instructions
          if opcode not in _CONTAINERS}


def wall_shares(events: Iterable[dict[str, Any]],
                kinds: dict[str, str]) -> dict[str, float]:
  """Seconds of wall time per kind over the traced ops' span.

  `events` are Chrome-trace events ("ph": "X", "ts"/"dur" in us); those
  named after an op in `kinds` are the leaves. Each moment is split equally
  among the ops running then; moments inside the span with none running
  count as "untraced".
  """
  leaves = [e for e in events
            if e.get("ph") == "X" and e.get("name") in kinds and e["dur"] > 0]
  shares = dict.fromkeys(KINDS, 0.0)
  if not leaves:
    return shares
  edges = sorted([(e["ts"], 1, i) for i, e in enumerate(leaves)] +
                 [(e["ts"] + e["dur"], -1, i) for i, e in enumerate(leaves)])
  active: set[int] = set()
  last = edges[0][0]
  for t, change, i in edges:
    span = (t - last) * 1e-6
    if active:
      for j in active:
        shares[kinds[leaves[j]["name"]]] += span / len(active)
    else:
      shares["untraced"] += span
    last = t
    if change > 0:
      active.add(i)
    else:
      active.discard(i)
  return shares


def profile_call(fn: Callable, *args) -> tuple[dict[str, float], Any]:
  """Compiles jitted `fn` for args with per-op trace events, runs it once to
  warm up and once under `jax.profiler.trace`; returns (wall_shares, the
  traced call's output). `fn` must not donate args it is given twice."""
  if not hasattr(fn, "lower"):
    raise TypeError(f"profile_call needs a jax.jit-ed function, got {fn!r}: "
                    "wrap it in jax.jit (without donate_argnums)")
  compiled = fn.lower(*args).compile(compiler_options=COMPILER_OPTIONS)
  jax.block_until_ready(compiled(*args))
  with tempfile.TemporaryDirectory() as logdir:
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
      out = jax.block_until_ready(compiled(*args))
    path = glob.glob(os.path.join(logdir, "plugins", "profile", "*",
                                  "perfetto_trace.json.gz"))
    if not path:
      raise RuntimeError(f"jax.profiler wrote no perfetto trace in {logdir}")
    with gzip.open(path[0]) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  return wall_shares(events, op_kinds(compiled.as_text())), out
