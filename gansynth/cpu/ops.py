"""A network's forward pass with CPU-fast forms of its convolutions and pools.

`lowered(apply, conv)` traces a flax `apply` (or any function) to a jaxpr
and evaluates it again, equation by equation, inside the caller's trace, so
autodiff, vmap and jit see the replacements, not the originals:
  * a convolution is computed by `matmul_conv` where the rule of `conv`
    picks it (matmul_conv.conv_function);
  * a 2x2 stride-2 max-pool is a max over reshaped axes with a hand-written
    VJP (`max_pool_2x2`): XLA:CPU's select-and-scatter gradient of
    nn.max_pool becomes gathers and scatters under a vmap over GANs.
The models stay plain flax modules; everything else is bound unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
from jax import lax
from jax.extend import core as jex_core
import jax.numpy as jnp

from gansynth.cpu import matmul_conv

# Call primitives whose body is evaluated in place, so what is inside is seen.
_INLINED = ("jit", "pjit", "closed_call")


def lowered(apply: Callable, conv: str) -> Callable:
  """`apply` with its convolutions and 2x2 max-pools in the
  forms above; keyword arguments are static (e.g. flax's `train`,
  `mutable`). With conv="lax" the convolutions stay lax's."""
  conv_fn = matmul_conv.conv_function(conv) or lax.conv_general_dilated

  def fast(*args, **kwargs):
    closed, out_shape = jax.make_jaxpr(
        lambda a: apply(*a, **kwargs), return_shape=True)(args)
    outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args),
                     conv_fn)
    return jax.tree.unflatten(jax.tree.structure(out_shape), outs)
  return fast


def _evaluate(jaxpr: jex_core.Jaxpr, consts: Sequence[Any],
              args: Sequence[Any], conv_fn: Callable) -> list[Any]:
  env: dict[Any, Any] = {}

  def read(v):
    return v.val if isinstance(v, jex_core.Literal) else env[v]

  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    vals = [read(v) for v in eqn.invars]
    prim, params = eqn.primitive, eqn.params
    body = params.get("jaxpr")
    if prim.name in _INLINED and isinstance(body, jex_core.ClosedJaxpr):
      outs = _evaluate(body.jaxpr, body.consts, vals, conv_fn)
    elif prim is lax.conv_general_dilated_p:
      params = {k: v for k, v in params.items() if k != "out_sharding"}
      outs = [conv_fn(*vals, **params)]
    elif prim is lax.reduce_window_max_p and _is_pool_2x2(params):
      outs = [max_pool_2x2(vals[0], params["padding"])]
    else:
      outs = prim.bind(*vals, **prim.get_bind_params(params))
      outs = outs if prim.multiple_results else [outs]
    for v, o in zip(eqn.outvars, outs):
      env[v] = o
  return [read(v) for v in jaxpr.outvars]


def _is_pool_2x2(params) -> bool:
  pads = params["padding"]
  return (tuple(params["window_dimensions"]) == (1, 2, 2, 1)
          and tuple(params["window_strides"]) == (1, 2, 2, 1)
          and set(params["base_dilation"]) == {1}
          and set(params["window_dilation"]) == {1}
          and tuple(pads[0]) == tuple(pads[3]) == (0, 0)
          and pads[1][0] == pads[2][0] == 0)


def max_pool_2x2(x: jax.Array, padding=((0, 0), (0, 0), (0, 0), (0, 0))
                 ) -> jax.Array:
  """nn.max_pool(x, (2, 2), (2, 2)) with `padding` (lax's, at the end only),
  NHWC, as a max over reshaped axes. Its gradient is nn.max_pool's: all of
  it to the first maximum of each window (row-major)."""
  pad_h, pad_w = padding[1][1], padding[2][1]
  if pad_h or pad_w:
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)),
                constant_values=-jnp.inf)
  return _max_2x2(x)


def _windows_2x2(x):
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _max_2x2(x):
  return _windows_2x2(x).max(axis=(2, 4))


def _max_2x2_fwd(x):
  y = _max_2x2(x)
  return y, (x, y)


def _max_2x2_bwd(residuals, g):
  x, y = residuals
  hit = _windows_2x2(x) == y[:, :, None, :, None]
  taken = jnp.zeros_like(hit[:, :, 0, :, 0])
  rows = []
  for a in range(2):
    cols = []
    for b in range(2):
      first = hit[:, :, a, :, b] & ~taken
      taken = taken | first
      cols.append(jnp.where(first, g, 0))
    rows.append(jnp.stack(cols, axis=3))  # [n, h/2, w/2, 2, c]
  dx = jnp.stack(rows, axis=2)  # [n, h/2, 2, w/2, 2, c]
  return (dx.reshape(x.shape).astype(x.dtype),)


_max_2x2.defvjp(_max_2x2_fwd, _max_2x2_bwd)
