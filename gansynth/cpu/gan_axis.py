"""How one GAN's step is mapped over the stacked K-GAN axis on XLA:CPU.

Strategies (`config.gan.strategy`), all giving the same numbers up to float
round-off:
  * `vmap`: `jax.vmap`. A vmap over per-GAN convolution weights becomes a
    grouped convolution, whose gradient XLA:CPU runs slowly; convolutions
    computed as matmuls (ops.lowered) become batched matmuls instead.
  * `unroll`: the K steps traced one after the other inside the same jit
    (a Python loop): K times the ops and the compile time, but ungrouped
    convolutions. The train chunk carries the K states unstacked (layout.py).
  * `conv_unroll`: vmap for everything except the convolutions, which run
    one ungrouped convolution per GAN (`vmap_except_convs`).
  * `auto`: `vmap` off the CPU; on the CPU `unroll` for GANs whose step is
    large (`work` from `AUTO_LARGE`'s threshold up), else `conv_unroll`.
The split is measured: docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
from jax import lax
from jax.extend import core as jex_core
import jax.numpy as jnp

STRATEGIES = ("auto", "vmap", "unroll", "conv_unroll")
AUTO = {"cpu": "conv_unroll"}
# (strategy, work from which it is used): see the module docstring.
AUTO_LARGE = {"cpu": ("unroll", 8e6)}
# Primitives whose body is inlined so the convolutions inside are seen.
_INLINED = ("jit", "pjit", "closed_call", "custom_jvp_call", "custom_vjp_call")


def resolve(strategy: str, work: float = 0.0) -> str:
  """The concrete strategy `strategy` stands for on this backend, for a GAN
  whose step is `work` (`step_work`)."""
  if strategy == "auto":
    backend = jax.default_backend()
    large, threshold = AUTO_LARGE.get(backend, (None, float("inf")))
    return large if work >= threshold else AUTO.get(backend, "vmap")
  if strategy not in STRATEGIES:
    raise ValueError(f"config.gan.strategy={strategy!r}; choose one of "
                     f"{STRATEGIES}")
  return strategy


def step_work(config) -> float:
  """batch * pixels * width**2 of one GAN: a proxy for its train step's
  FLOPs, by which `resolve` picks what `auto` is."""
  g = config.gan
  return (float(g.batch_size) * config.data.image_size ** 2
          * max(g.g_width, g.d_width) ** 2)


def holds_unstacked(strategy: str, work: float = 0.0) -> bool:
  """Whether `strategy` keeps the carried K-GAN state as K separate per-GAN
  pytrees between steps (`unroll`; see map_over_gans's `unstacked`)."""
  return resolve(strategy, work) == "unroll"


def split(tree: Any) -> tuple[Any, ...]:
  """A K-stacked pytree as K per-GAN pytrees (slices of axis 0)."""
  k = jax.tree.leaves(tree)[0].shape[0]
  return tuple(jax.tree.map(lambda x, i=i: x[i], tree) for i in range(k))


def join(trees: Sequence[Any]) -> Any:
  """K per-GAN pytrees stacked on a new axis 0 (the inverse of `split`)."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def map_over_gans(fn: Callable, strategy: str,
                  in_batched: Sequence[bool] = (True, True, True, False),
                  work: float = 0.0, unstacked: bool = False) -> Callable:
  """Lifts fn to the stacked K-GAN axis (axis 0 of the `in_batched` args).

  The default `in_batched` fits the step fn(gan, images, count, step);
  `work` (`step_work` of one GAN's call) decides what `auto` is.
  With `unstacked`, where `holds_unstacked` (unroll), the first argument and the
  first of fn's outputs (a tuple) are K per-GAN pytrees (`split`) instead
  of one stacked pytree, so a carried state stays in K buffers that a
  donating jit updates in place: no per-step slicing of it, and no stacking
  of every parameter and Adam moment into new [K, ...] arrays.
  """
  strategy = resolve(strategy, work)
  if unstacked and strategy != "unroll":
    raise ValueError(f"strategy {strategy!r} keeps the K GANs stacked; "
                     "pass unstacked=holds_unstacked(strategy, work)")
  if strategy == "vmap":
    return jax.vmap(fn, in_axes=tuple(0 if b else None for b in in_batched))
  if strategy == "unroll":
    def unrolled(*args):
      per_gan = [a if unstacked and n == 0 else split(a) if b else None
                 for n, (a, b) in enumerate(zip(args, in_batched))]
      k = len(next(p for p in per_gan if p is not None))
      outs = [fn(*(a if p is None else p[i] for a, p in zip(args, per_gan)))
              for i in range(k)]
      if not unstacked:
        return join(outs)
      first, *rest = zip(*outs)
      return (tuple(first), *(join(r) for r in rest))
    return unrolled
  return vmap_except_convs(fn, conv_unrolled, in_batched)


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
