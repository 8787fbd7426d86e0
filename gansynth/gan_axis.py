"""How one GAN's step is mapped over the stacked K-GAN axis.

Strategies (`config.gan.strategy`), all giving the same numbers up to float
round-off:
  * `vmap`: `jax.vmap`. A vmap over per-GAN convolution weights becomes a
    grouped convolution, whose gradient XLA:CPU runs slowly (jax issues
    26568, 15339, 13800).
  * `unroll`: the K steps traced one after the other inside the same jit.
    K times the ops (and compile time), but ungrouped convolutions.
  * `conv_unroll`: vmap for everything except the convolutions, which run
    one ungrouped convolution per GAN.
  * `conv_matmul`: vmap for everything except the convolutions, which are
    rewritten as im2col patches times the kernel in one batched matmul
    (`einsum` with the GAN axis as a batch dimension).
  * `auto`: `AUTO[jax.default_backend()]`, else `vmap`.

The last two re-evaluate the jaxpr of one GAN's step with the K axis added
(`vmap_except_convs`), so the models stay plain flax modules.

Measured with `python -m gansynth.bench` on a shared, heavily loaded 2-core
AMD EPYC CPU (jax 0.10.2), images/s of the K=10 train step:

  config                      vmap  unroll  conv_unroll  conv_matmul  torch
  quickstart (study 8x8x1)    1256    1279         1583         1769    638
  bench_svhn (dcgan 32x32x3)   ~70    ~135            -           18   ~385

(bench_svhn's vmap/unroll/torch are the figures of issue 7; conv_matmul
materialises im2col patches, 4.7 GB of XLA temp, and is memory-bound there.)
`auto` on CPU is `conv_unroll`: faster than vmap at small sizes and the
per-GAN ungrouped convolutions that make `unroll` ~2x vmap at 32x32, with
vmap's compact graph (compile 18s vs 47s for unroll on quickstart).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Sequence

import jax
from jax import lax
from jax.extend import core as jex_core
import jax.numpy as jnp

STRATEGIES = ("auto", "vmap", "unroll", "conv_unroll", "conv_matmul")
AUTO = {"cpu": "conv_unroll"}
# Primitives whose body is inlined so the convolutions inside are seen.
_INLINED = ("jit", "pjit", "closed_call", "custom_jvp_call", "custom_vjp_call")


def resolve(strategy: str) -> str:
  """The concrete strategy `strategy` stands for on this backend."""
  if strategy == "auto":
    return AUTO.get(jax.default_backend(), "vmap")
  if strategy not in STRATEGIES:
    raise ValueError(f"config.gan.strategy={strategy!r}; choose one of "
                     f"{STRATEGIES}")
  return strategy


def map_over_gans(fn: Callable, strategy: str,
                  in_batched: Sequence[bool] = (True, True, True, False)
                  ) -> Callable:
  """Lifts fn to the stacked K-GAN axis (axis 0 of the `in_batched` args).

  The default `in_batched` fits the step fn(gan, images, count, step).
  """
  strategy = resolve(strategy)
  if strategy == "vmap":
    return jax.vmap(fn, in_axes=tuple(0 if b else None for b in in_batched))
  if strategy == "unroll":
    def unrolled(*args):
      k = next(jax.tree.leaves(a)[0].shape[0]
               for a, b in zip(args, in_batched) if b)
      outs = [fn(*(jax.tree.map(lambda x, i=i: x[i], a) if b else a
                   for a, b in zip(args, in_batched))) for i in range(k)]
      return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return unrolled
  conv = {"conv_unroll": conv_unrolled, "conv_matmul": conv_as_matmul}[strategy]
  return vmap_except_convs(fn, conv, in_batched)


def vmap_except_convs(fn: Callable, conv: Callable,
                      in_batched: Sequence[bool]) -> Callable:
  """Like vmap over axis 0 of the args flagged in `in_batched`, but every
  convolution with a batched operand is computed by conv(lhs, rhs, **params),
  both operands carrying the leading axis.

  Traces fn once for one slice, then evaluates its jaxpr equation by
  equation: a plain vmap per equation, inlined calls, `conv` for convolutions.
  """
  def mapped(*args):
    flat, tree = jax.tree.flatten(args)
    batched = jax.tree.leaves(tuple(
        jax.tree.map(lambda _, b=b: b, a) for a, b in zip(args, in_batched)))
    one = [x[0] if b else x for x, b in zip(flat, batched)]
    closed, out_shape = jax.make_jaxpr(
        lambda *f: fn(*jax.tree.unflatten(tree, f)), return_shape=True)(*one)
    outs, out_batched = _eval_batched(closed, flat, batched, conv)
    k = next(x.shape[0] for x, b in zip(flat, batched) if b)
    outs = [o if b else jnp.broadcast_to(o, (k,) + jnp.shape(o))
            for o, b in zip(outs, out_batched)]
    return jax.tree.unflatten(jax.tree.structure(out_shape), outs)
  return mapped


def _eval_batched(closed: jex_core.ClosedJaxpr, args: Sequence[Any],
                  batched: Sequence[bool], conv: Callable):
  """Evaluates `closed` on args batched (or not) on axis 0."""
  env = {}

  def read(v):
    return (v.val, False) if isinstance(v, jex_core.Literal) else env[v]

  env.update((v, (c, False)) for v, c in zip(closed.jaxpr.constvars,
                                             closed.consts))
  env.update((v, (a, b)) for v, a, b in zip(closed.jaxpr.invars, args,
                                            batched))
  for eqn in closed.jaxpr.eqns:
    vals, bs = [list(t) for t in zip(*map(read, eqn.invars))] or ([], [])
    prim, params = eqn.primitive, eqn.params
    body = params.get("jaxpr", params.get("call_jaxpr"))
    if not any(bs):
      outs = prim.bind(*vals, **params)
      outs, out_bs = outs if prim.multiple_results else [outs], None
    elif prim.name in _INLINED and isinstance(body, jex_core.ClosedJaxpr):
      outs, out_bs = _eval_batched(body, vals, bs, conv)
    elif prim is lax.conv_general_dilated_p:
      k = next(v.shape[0] for v, b in zip(vals, bs) if b)
      lhs, rhs = (v if b else jnp.broadcast_to(v, (k,) + v.shape)
                  for v, b in zip(vals, bs))
      outs, out_bs = [conv(lhs, rhs, **params)], None
    else:
      outs = jax.vmap(lambda *a: prim.bind(*a, **params),
                      in_axes=[0 if b else None for b in bs])(*vals)
      outs, out_bs = outs if prim.multiple_results else [outs], None
    if out_bs is None:
      out_bs = [any(bs)] * len(outs)
    env.update((v, (o, b)) for v, o, b in zip(eqn.outvars, outs, out_bs))
  outs = [read(v) for v in closed.jaxpr.outvars]
  return [o for o, _ in outs], [b for _, b in outs]


def conv_unrolled(lhs: jax.Array, rhs: jax.Array, **params) -> jax.Array:
  """K ungrouped convolutions, one per slice of the leading axis."""
  return jnp.stack([lax.conv_general_dilated_p.bind(l, r, **params)
                    for l, r in zip(lhs, rhs)])


def conv_as_matmul(lhs: jax.Array, rhs: jax.Array, *, window_strides, padding,
                   lhs_dilation, rhs_dilation, dimension_numbers,
                   feature_group_count, batch_group_count, precision,
                   preferred_element_type, **_) -> jax.Array:
  """K convolutions (leading axis) as im2col patches @ kernels in one einsum.

  Handles any `conv_general_dilated` (strides, padding, dilations, feature
  or batch groups), which covers the convolutions of a step's forward and
  gradient passes.
  """
  lspec, rspec, ospec = dimension_numbers
  nsp = len(lspec) - 2
  # [K, N, *spatial, C] and [K, *window, I, O].
  x = jnp.transpose(lhs, [0] + [1 + d for d in (lspec[0], *lspec[2:],
                                                lspec[1])])
  w = jnp.transpose(rhs, [0] + [1 + d for d in (*rspec[2:], rspec[1],
                                                rspec[0])])
  mm = dict(groups=(batch_group_count, feature_group_count),
            precision=precision, preferred_element_type=preferred_element_type)
  y = _conv_nhwc(x, w, tuple(window_strides), tuple(map(tuple, padding)),
                 tuple(lhs_dilation), tuple(rhs_dilation), mm)
  # y: [K, N/b, *out, O] -> the layout of ospec.
  roles = [0] + list(range(2, 2 + nsp)) + [1]  # y's axes as ospec roles
  perm = [roles.index(ospec.index(j)) for j in range(2 + nsp)]
  return jnp.transpose(y, [0] + [1 + p for p in perm])


def _conv_nhwc(x, w, strides, padding, lhs_dil, rhs_dil, mm):
  """[K, N, *sp, C] (*) [K, *win, I, O] -> [K, N/b, *out, O].

  An input dilation with stride 1 (transposed convolutions and gradients of
  strided ones) is split into its d phases ("sub-pixel" convolutions), so
  no product with the inserted zeros is computed.
  """
  i = next((i for i, (d, s) in enumerate(zip(lhs_dil, strides))
            if d > 1 and s == 1), None)
  if i is None:
    return _im2col_conv(x, w, strides, padding, lhs_dil, rhs_dil, mm)
  d, rd, (lo, hi) = lhs_dil[i], rhs_dil[i], padding[i]
  length, taps_all = x.shape[2 + i], w.shape[1 + i]
  out = (length - 1) * d + 1 + lo + hi - (taps_all - 1) * rd
  phases = []
  for r in range(d):
    taps = [q for q in range(taps_all) if (r + q * rd - lo) % d == 0]
    if r >= out or not taps:
      phases.append(None)
      continue
    step = taps[1] - taps[0] if len(taps) > 1 else 1
    rd2 = step * rd // d if len(taps) > 1 else 1
    lo2 = -((r + taps[0] * rd - lo) // d)
    hi2 = len(range(r, out, d)) - length - lo2 + (len(taps) - 1) * rd2
    sub_w = lax.slice_in_dim(w, taps[0], taps[-1] + 1, step, axis=1 + i)
    phases.append(_conv_nhwc(
        x, sub_w, strides, _put(padding, i, (lo2, hi2)), _put(lhs_dil, i, 1),
        _put(rhs_dil, i, rd2), mm))
  m = -(-out // d)
  like = next(p for p in phases if p is not None)
  phases = [jnp.zeros(_put(like.shape, 2 + i, m), like.dtype) if p is None
            else jnp.pad(p, [(0, m - p.shape[2 + i]) if a == 2 + i else (0, 0)
                             for a in range(p.ndim)]) for p in phases]
  y = jnp.stack(phases, axis=3 + i)  # [..., m, d, ...]: position m * d + r
  y = y.reshape(_put(like.shape, 2 + i, m * d))
  return lax.slice_in_dim(y, 0, out, axis=2 + i)


def _put(t: tuple, i: int, v) -> tuple:
  return tuple(t[:i]) + (v,) + tuple(t[i + 1:])


def _im2col_conv(x, w, strides, padding, lhs_dil, rhs_dil, mm):
  """Pads/dilates, gathers windows with strided slices, one batched einsum."""
  nsp = len(strides)
  x = lax.pad(x, jnp.zeros((), x.dtype),
              [(0, 0, 0)] * 2 + [(lo, hi, d - 1) for (lo, hi), d in
                                 zip(padding, lhs_dil)] + [(0, 0, 0)])
  window = w.shape[1:1 + nsp]
  out = [(x.shape[2 + i] - (window[i] - 1) * rhs_dil[i] - 1)
         // strides[i] + 1 for i in range(nsp)]
  patches = _windows(x, window, out, strides, rhs_dil)  # [K, N, *out, Q, C]
  k, n, c = x.shape[0], x.shape[1], x.shape[-1]
  (b, g), o = mm["groups"], w.shape[-1]
  patches = patches.reshape((k, b, n // b) + tuple(out) +
                            (patches.shape[-2], g, c // g))
  w = w.reshape((k, -1, c // g, b, g, o // (b * g)))
  y = jnp.einsum("kbn...qgc,kqcbgo->kn...bgo", patches, w,
                 precision=mm["precision"],
                 preferred_element_type=mm["preferred_element_type"])
  return y.reshape(y.shape[:2 + nsp] + (o,))


def _windows(x: jax.Array, window, out, strides, dilation) -> jax.Array:
  """[K, N, *spatial, C] -> [K, N, *out, prod(window), C] by strided slices.

  Loops over whichever is fewer, window offsets or output positions (the
  kernel gradient's "window" is the whole output).
  """
  k, n, c = x.shape[0], x.shape[1], x.shape[-1]
  if math.prod(window) <= math.prod(out):
    cols = []
    for q in itertools.product(*map(range, window)):
      start = [0, 0] + [qi * d for qi, d in zip(q, dilation)] + [0]
      limit = ([k, n] + [s + (o - 1) * st + 1 for s, o, st in
                         zip(start[2:], out, strides)] + [c])
      cols.append(lax.slice(x, start, limit, [1, 1] + list(strides) + [1]))
    return jnp.stack(cols, axis=-2)
  rows = []
  for p in itertools.product(*map(range, out)):
    start = [0, 0] + [pi * st for pi, st in zip(p, strides)] + [0]
    limit = ([k, n] + [s + (wi - 1) * d + 1 for s, wi, d in
                       zip(start[2:], window, dilation)] + [c])
    rows.append(lax.slice(x, start, limit, [1, 1] + list(dilation) + [1]))
  rows = jnp.stack(rows, axis=2)  # [K, N, P, *window, C]
  return rows.reshape((k, n) + tuple(out) + (math.prod(window), c))

