"""CPU-speed formulations of the plain K-GAN step, selected by config.gan.

The main path (gan_train) is `jax.vmap` of one GAN's pure step on plain
flax models. XLA:CPU runs that slowly (grouped convolutions, small-grid
convolutions, select-and-scatter pooling gradients), so on the CPU `auto`
maps the same step and the same models differently:
  * gan_axis.py: how the K GANs are mapped (`gan.strategy`: unroll,
    conv_unroll, vmap);
  * ops.py + matmul_conv.py: convolutions as matrix products and max-pool
    gradients without scatters (`gan.conv`), applied to the models' `apply`
    functions;
  * layout.py: under `unroll`, the train chunk carries the K GANs unstacked.
Off the CPU, `auto` is plain vmap with XLA's convolutions, and nothing here
runs. Every strategy gives the plain path's numbers up to float round-off.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from gansynth.cpu import gan_axis
from gansynth.cpu import layout
from gansynth.cpu import matmul_conv
from gansynth.cpu import ops
from gansynth.gan import train_loop

STRATEGIES = gan_axis.STRATEGIES
CONVS = matmul_conv.CONVS
step_work = gan_axis.step_work
split, join = gan_axis.split, gan_axis.join


def strategy(config) -> str:
  """What config.gan.strategy stands for here (gan_axis.resolve)."""
  return gan_axis.resolve(config.gan.strategy, step_work(config))


def _rewrites(config) -> bool:
  """Whether convolutions and pools get the forms of ops.py: for any conv
  but "lax" on the CPU, and for "matmul" everywhere."""
  conv = config.gan.conv
  if conv not in CONVS:
    raise ValueError(f"config.gan.conv={conv!r}; choose one of {CONVS}")
  return conv == "matmul" or (conv == "auto"
                              and jax.default_backend() == "cpu")


def selected(config) -> bool:
  """Whether the K-GAN step goes through this package (else: plain vmap)."""
  return strategy(config) != "vmap" or _rewrites(config)


def holds_unstacked(config) -> bool:
  """Whether the train chunk carries the K GANs as K separate states."""
  return gan_axis.holds_unstacked(config.gan.strategy, step_work(config))


def lowered_nets(nets: Any, config) -> Any:
  """`nets` (gan_train.Nets) with g_apply/d_apply in ops.py's forms."""
  if not _rewrites(config):
    return nets
  return dataclasses.replace(
      nets, g_apply=ops.lowered(nets.g_apply, config.gan.conv),
      d_apply=ops.lowered(nets.d_apply, config.gan.conv))


def map_over_gans(fn: Callable, config, in_batched=(True, True, True, False),
                  unstacked: bool = False) -> Callable:
  """fn lifted to the K-GAN axis by config.gan.strategy (gan_axis)."""
  return gan_axis.map_over_gans(fn, config.gan.strategy, in_batched,
                                work=step_work(config), unstacked=unstacked)


def repeat_step(step_fn: Callable, metric_shapes: dict[str, tuple[int, ...]],
                unstacked: bool) -> Callable:
  """train_loop.repeat_step for a step on a state whose `.gans` are
  stacked; with `unstacked`, its steps carry them as split (layout.py)."""
  if not unstacked:
    return train_loop.repeat_step(step_fn, metric_shapes)
  convert = lambda f: lambda state: state.replace(gans=f(state.gans))
  return layout.repeat_step_unstacked(step_fn, metric_shapes,
                                      to_carried=convert(split),
                                      from_carried=convert(join))
