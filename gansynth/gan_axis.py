"""How one GAN's step is mapped over the stacked K-GAN axis.

Strategies (`config.gan.strategy`), all giving the same numbers up to float
round-off:
  * `vmap`: `jax.vmap`. A vmap over per-GAN convolution weights becomes a
    grouped convolution, whose gradient XLA:CPU runs slowly (jax issues
    26568, 15339, 13800). Convolutions computed as matmuls
    (`config.gan.conv`, matmul_conv.py) become batched matmuls instead.
  * `unroll`: the K steps traced one after the other inside the same jit.
    K times the ops (and compile time), but ungrouped convolutions. The
    train chunk carries the K states apart (`holds_apart`, `split`/`join`
    once per chunk), so each step updates K sets of buffers in place.
  * `conv_unroll`: vmap for everything except the convolutions, which run
    one ungrouped convolution per GAN (`vmap_except_convs` re-evaluates the
    jaxpr of one GAN's step with the K axis added, so the models stay plain
    flax modules).
  * `auto`: by backend and by how much work one GAN's step is (`resolve`):
    `AUTO_LARGE[backend]` from its work threshold up, else
    `AUTO[backend]`, else `vmap`.

`python -m gansynth.bench --config C --strategies=unroll:auto,conv_unroll:auto
--run=step` (and torch where shown)
on the idle 2-core AMD EPYC CPU (jax 0.10.2), images/s of the K=10 train
step (work = batch * image pixels * width**2 of one GAN,
`gan_train.step_work`), with `unroll` carrying the GANs apart:

  config                          work  unroll:auto  conv_unroll:auto  torch
  quickstart (study 8x8, w16)     0.5M       13,165            14,812
  quickstart at 16x16             2.1M  3,668/4,968       4,564/4,271
  mnist, widths 32, batch 32       26M        1,546             1,371
  mnist (dcgan 28x28, w64)        205M      559/544           499/483
  bench_svhn (dcgan 32x32x3)      268M          163               148    161
  bench_svhn, study nets          268M          183               158    148
  (a/b: two runs the same hour; bench_svhn rows are the README's tables,
  where vmap:lax ran 42 dcgan / 31 study; unroll:lax ran 7 dcgan in an
  earlier run. The small nets' steps (21-90 ms) moved up to 35% between
  runs, so at 16x16 the two are a toss-up.)

So on CPU `auto` unrolls GANs whose step is large and keeps `conv_unroll`
for small ones, whose many small ops gain from being batched. Why unrolling
wins on the large ones (measured on the study nets): an isolated XLA:CPU
convolution of 16x16x64 -> 128 ran on about one core (105 GFLOP/s of a
~200 ceiling), the ten GANs' independent ones unrolled reached 209, and
the unrolled step has no stacks of per-GAN conv results. Unrolling
compiles K times the ops: 11-25 s against 5-10 s above, repaid within a few
hundred steps of the larger nets. With conv="auto" the small-grid layers
are matmuls and the large-grid ones XLA's convolutions, per GAN.
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
  whose step is `work` (`gan_train.step_work`)."""
  if strategy == "auto":
    backend = jax.default_backend()
    large, threshold = AUTO_LARGE.get(backend, (None, float("inf")))
    return large if work >= threshold else AUTO.get(backend, "vmap")
  if strategy not in STRATEGIES:
    raise ValueError(f"config.gan.strategy={strategy!r}; choose one of "
                     f"{STRATEGIES}")
  return strategy


def holds_apart(strategy: str, work: float = 0.0) -> bool:
  """Whether `strategy` keeps the carried K-GAN state as K separate per-GAN
  pytrees between steps (`unroll`; see map_over_gans's `apart`)."""
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
                  work: float = 0.0, apart: bool = False) -> Callable:
  """Lifts fn to the stacked K-GAN axis (axis 0 of the `in_batched` args).

  The default `in_batched` fits the step fn(gan, images, count, step);
  `work` (`gan_train.step_work` of one GAN's call) decides what `auto` is.
  With `apart`, where `holds_apart` (unroll), the first argument and the
  first of fn's outputs (a tuple) are K per-GAN pytrees (`split`) instead
  of one stacked pytree, so a carried state stays in K buffers that a
  donating jit updates in place: no per-step slicing of it, and no stacking
  of every parameter and Adam moment into new [K, ...] arrays (for ten
  32x32 DCGANs on the 2-core CPU those stacks took ~12% of the step).
  """
  strategy = resolve(strategy, work)
  if apart and strategy != "unroll":
    raise ValueError(f"strategy {strategy!r} keeps the K GANs stacked; "
                     "pass apart=holds_apart(strategy, work)")
  if strategy == "vmap":
    return jax.vmap(fn, in_axes=tuple(0 if b else None for b in in_batched))
  if strategy == "unroll":
    def unrolled(*args):
      per_gan = [a if apart and n == 0 else split(a) if b else None
                 for n, (a, b) in enumerate(zip(args, in_batched))]
      k = len(next(p for p in per_gan if p is not None))
      outs = [fn(*(a if p is None else p[i] for a, p in zip(args, per_gan)))
              for i in range(k)]
      if not apart:
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
