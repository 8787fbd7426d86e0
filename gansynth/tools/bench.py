"""Benchmark of the K-GAN train step, the input pipeline and synthesis.

  python -m gansynth.tools.bench --config configs/bench_svhn.py
  python -m gansynth.tools.bench --config configs/quickstart.py \
      --strategies=vmap:lax,vmap:matmul,conv_unroll:auto --run=step,kcurve
  python -m gansynth.tools.bench --config configs/bench_svhn.py --run=profile
  python -m gansynth.tools.bench --config configs/mnist.py:cpu --run=refiner

Data are random images of the config's shape (no data set is read), so only
compute is measured. "model GFLOP/s" counts the model's own arithmetic (see
`model_flops`), "executed" what XLA ran (zero taps and im2col included).
On a GPU the PyTorch reference runs on CUDA too (when torch sees one);
on a TPU it runs on the host CPU and says so. In Colab (where the kernel
already holds the TPU, so a second process could not open it), call
`run(config, ...)` instead of the command.
Every number is the best of --repeats timings after compilation (as
`timeit` advises: on a shared machine the slower runs measure the
neighbours, not the code), the same rule for JAX, PyTorch and the matmul
ceiling.
"""

from __future__ import annotations

import functools
import math
import resource
import time
from typing import Callable, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from gansynth import cpu
from gansynth import models
from gansynth.cpu import matmul_conv
from gansynth.cpu import step_profile
from gansynth.data import input_pipeline
from gansynth.gan import gan_train
from gansynth.sim import refiner

RUNS = ("ceiling", "step", "layers", "profile", "input", "kcurve",
        "synthesis", "torch", "refiner")
DEFAULT_RUN = ("ceiling", "step", "input", "synthesis", "torch")
FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags (defined only when run as the command, so that
  importing this module, e.g. in Colab or next to gansynth.main, adds none)."""
  config_flags.DEFINE_config_file("config", None,
                                  "Config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_list("strategies", ["auto"], "What to time: "
                    f"config.gan.strategy values from {cpu.STRATEGIES}, "
                    "each optionally with ':conv' for config.gan.conv (e.g. "
                    "vmap:matmul); without it, the config's conv.")
  flags.DEFINE_list("run", list(DEFAULT_RUN),
                    f"What to run, from {', '.join(RUNS)}.")
  flags.DEFINE_integer("steps", 2, "Train steps per timing.")
  flags.DEFINE_integer("repeats", 3,
                       "Timings per number (the best is shown).")
  flags.DEFINE_integer("synth_images", 73000,
                       "Images to synthesize in total.")
  flags.mark_flags_as_required(["config"])


def best_time(fn: Callable[[], object], repeats: int) -> float:
  """Seconds of the fastest of `repeats` calls of fn (results awaited)."""
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return min(times)


def random_data(config, per_class: int = 512) -> input_pipeline.ClassData:
  k, s, c = (gan_train.num_rows(config), config.data.image_size,
             config.data.channels)
  images = np.random.default_rng(0).integers(
      0, 256, (k, per_class, s, s, c), dtype=np.uint8)
  return jax.device_put(input_pipeline.ClassData(
      images=images, counts=np.full((k,), per_class, np.int32)))


def matmul_ceiling(runs: int = 20, n: int = 2048) -> float:
  """float32 FLOP/s of a large jnp.dot, best of `runs`: what this backend can
  reach (like every timing here, the best: a shared CPU's slow runs say
  nothing about the hardware). More runs than the steps get, as one product
  is short.
  """
  a = jax.random.normal(jax.random.key(0), (n, n))
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  return 2 * n ** 3 / best_time(lambda: dot(a, a), runs)


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_flops(config) -> float:
  """FLOPs of one K-GAN step as the model defines it: XLA's count for lax
  convolutions (which skips the zeros of input dilation and padding), so
  the zero taps and im2col copies of other formulations are not counted
  as work. Lowered only, never run."""
  config = with_strategy(config, "vmap:lax")
  state = gan_train.create_state(config, jax.random.key(0))
  cost = gan_train.make_train_chunk(config).step.lower(
      state, random_data(config, per_class=8)).cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"])


def time_step(config, steps: int, repeats: int,
              flops: float) -> dict[str, float]:
  """Images/s, compile time, FLOP/s and memory of the jitted K-GAN step as
  the train chunk runs it, in the layout it carries (its change of layout,
  once per chunk, is not timed: 0.1-0.3 s each way for bench_svhn's 1 GB
  state on the 2-core CPU); `flops` is model_flops of the config (the same
  for every strategy)."""
  data = random_data(config)
  state = gan_train.create_state(config, jax.random.key(0))
  chunk = gan_train.make_train_chunk(config)
  # The layout the steps carry (converted once per chunk).
  carried = (chunk.to_carried(state) if hasattr(chunk, "to_carried")
             else state)
  t = time.perf_counter()
  compiled = chunk.step.lower(carried, data).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost  # one dict per device
  mem = compiled.memory_analysis()
  holder = list(chunk.step(carried, data))  # warm-up

  def run():
    for _ in range(steps):
      holder[:] = chunk.step(holder[0], data)
    return holder[1]

  sec = best_time(run, repeats) / steps
  images = config.gan.batch_size * gan_train.num_gans(config)
  executed = float(cost.get("flops", float("nan")))
  return {"img_s": images / sec, "step_ms": 1e3 * sec, "compile_s": compile_s,
          "xla_flop_s": executed / sec, "flop_s": flops / sec,
          "temp_mb": getattr(mem, "temp_size_in_bytes", 0) / 2 ** 20,
          "rss_mb": peak_rss_mb()}


def input_throughput(config, steps: int, repeats: int) -> float:
  """Images/s of drawing and converting the K batches alone (no model)."""
  data = random_data(config)
  bs = config.gan.batch_size
  keys = jax.vmap(lambda k: jax.random.key_data(jax.random.fold_in(
      jax.random.key(0), k)))(jnp.arange(data.counts.shape[0]))

  def batch(raw_key, images, count, step):
    return jnp.sum(input_pipeline.class_batch(
        jax.random.wrap_key_data(raw_key), images, count, bs, step))

  @jax.jit
  def many(data):
    one = jax.vmap(batch, in_axes=(0, 0, 0, None))
    return jax.lax.fori_loop(
        0, steps, lambda s, acc: acc + jnp.sum(one(keys, data.images,
                                                   data.counts, s)), 0.0)

  many(data).block_until_ready()
  return steps * bs * data.counts.shape[0] / best_time(lambda: many(data),
                                                       repeats)


def refiner_speed(config, steps: int, repeats: int) -> float:
  """Adversarial steps/s of the one SimGAN refiner (config.refiner) on random
  rendered and real sets of the procedural source's size: every batch is
  drawn from a permutation of the whole set, so its size is part of the
  cost."""
  cfg, k = config.refiner, config.data.num_classes
  n = config.procedural.num_per_class * k
  shape = (config.data.image_size,) * 2 + (config.data.channels,)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (n, *shape), dtype=np.uint8))
  labels = jnp.asarray(rng.integers(0, k, n).astype(np.int32))
  data = (images, labels) if cfg.conditional else images
  chunk = refiner.make_train_chunks(cfg, 0, k)["adversarial"]
  holder = list(chunk(refiner.create_state(cfg, shape, jax.random.key(0), k),
                      data, data, steps))  # compile; the state is donated

  def run():
    holder[0], metrics = chunk(holder[0], data, data, steps)
    return metrics

  return steps / best_time(run, repeats)


def synthesis_speed(config, total: int, repeats: int) -> float:
  """Images/s of `make_sampler` generating `total` images from K generators."""
  k = gan_train.num_gans(config)
  per_class = math.ceil(total / k)
  bs = min(config.synthesis.batch_size, per_class)
  gans = gan_train.create_state(config, jax.random.key(0)).gans
  sampler = gan_train.make_sampler(config)
  z = jax.random.normal(jax.random.key(1), (k, bs, config.gan.latent_dim))
  sampler(gans, z).block_until_ready()
  calls = math.ceil(per_class / bs)

  def run():
    return [sampler(gans, z) for _ in range(calls)]

  return calls * bs * k / best_time(run, repeats)


def torch_nets(torch, config):
  """(G, D) in PyTorch with the layer shapes of models.make_gan (NCHW)."""
  nn = torch.nn
  g, s, c = config.gan, config.data.image_size, config.data.channels
  bn = lambda f: nn.BatchNorm2d(f, momentum=0.1)  # = flax momentum 0.9
  if g.architecture == "dcgan":
    n_up = models.num_doublings(s, 4)
    base, top = s // 2 ** n_up, g.g_width * 2 ** (n_up - 1)
    layers = [nn.Linear(g.latent_dim, base * base * top),
              nn.Unflatten(1, (top, base, base)), bn(top), nn.ReLU()]
    f_in = top
    for i in range(n_up):
      last = i == n_up - 1
      f = c if last else top // 2 ** (i + 1)
      layers.append(nn.ConvTranspose2d(f_in, f, 5, 2, 2, output_padding=1))
      layers += [nn.Tanh()] if last else [bn(f), nn.ReLU()]
      f_in = f
    d_layers, f_in = [], c
    for i in range(max(1, n_up)):
      f = g.d_width * 2 ** i
      d_layers.append(nn.Conv2d(f_in, f, 5, 2, 2))
      d_layers += ([bn(f)] if i else []) + [nn.LeakyReLU(0.2)]
      f_in = f
    side = s // 2 ** max(1, n_up)
  else:
    n_up = models.num_doublings(s, 3)
    base, w = s // 2 ** n_up, g.g_width
    layers = [nn.Linear(g.latent_dim, base * base * 4 * w),
              nn.Unflatten(1, (4 * w, base, base)), bn(4 * w), nn.ReLU()]
    f_in = 4 * w
    for i, f in enumerate((2 * w, w, c)):
      layers += [nn.Upsample(scale_factor=2)] if i < n_up else []
      layers.append(nn.Conv2d(f_in, f, 3, 1, 1))
      layers += [bn(f), nn.ReLU()] if i < 2 else [nn.Tanh()]
      f_in = f
    d_layers, f_in = [], c
    for f in (g.d_width, 2 * g.d_width, 4 * g.d_width):
      d_layers += [nn.Conv2d(f_in, f, 3, 1, 1), nn.LeakyReLU(0.2),
                   nn.MaxPool2d(2, ceil_mode=True)]
      f_in = f
    side = math.ceil(math.ceil(math.ceil(s / 2) / 2) / 2)
  d_layers += [nn.Flatten(), nn.Linear(f_in * side * side, 1)]
  return nn.Sequential(*layers), nn.Sequential(*d_layers)


def torch_device(torch) -> str:
  """Where the PyTorch reference runs: CUDA when JAX runs on a GPU and torch
  sees one (a like-for-like comparison), else the host CPU."""
  if jax.default_backend() == "gpu" and torch.cuda.is_available():
    return "cuda"
  return "cpu"


def torch_speed(torch, config, steps: int, repeats: int,
                device: str = "cpu") -> float:
  """Images/s of K PyTorch GANs (Adam, BCE) trained in a Python loop."""
  k, bs, g = gan_train.num_gans(config), config.gan.batch_size, config.gan
  gans = []
  for _ in range(k):
    gen, disc = (net.to(device) for net in torch_nets(torch, config))
    adam = lambda p: torch.optim.Adam(p, g.learning_rate, (g.beta1, g.beta2))
    gans.append((gen, disc, adam(gen.parameters()), adam(disc.parameters())))
  real = torch.rand(k, bs, config.data.channels, config.data.image_size,
                    config.data.image_size, device=device) * 2 - 1
  bce = torch.nn.BCEWithLogitsLoss()
  ones = torch.ones(bs, device=device)
  zeros = torch.zeros(bs, device=device)
  # CUDA runs asynchronously: wait for the queued work before the clock stops.
  wait = torch.cuda.synchronize if device == "cuda" else lambda: None

  def step():  # gan_train.gan_step's recipe, per config.gan.reuse_fake
    for i, (gen, disc, g_opt, d_opt) in enumerate(gans):
      fake = gen(torch.randn(bs, g.latent_dim, device=device))
      d_loss = (bce(disc(real[i])[:, 0], ones) +
                bce(disc(fake.detach())[:, 0], zeros))
      d_opt.zero_grad()
      d_loss.backward()
      d_opt.step()
      if not g.reuse_fake:
        fake = gen(torch.randn(bs, g.latent_dim, device=device))
      g_loss = bce(disc(fake)[:, 0], ones)
      g_opt.zero_grad()
      g_loss.backward()
      g_opt.step()

  step()
  wait()
  sec = best_time(lambda: ([step() for _ in range(steps)], wait()),
                  repeats) / steps
  return k * bs / sec


def conv_layers(config) -> list[tuple[str, tuple, tuple, dict]]:
  """(network, input shape, kernel shape, lax params) of every convolution
  in G's and D's forward pass, read from their jaxprs."""
  cfg = with_strategy(config, "vmap:lax")
  g, d = models.make_gan(cfg.gan, cfg.data.image_size, cfg.data.channels)
  z = jnp.zeros((cfg.gan.batch_size, cfg.gan.latent_dim))
  x = jnp.zeros((cfg.gan.batch_size, cfg.data.image_size,
                 cfg.data.image_size, cfg.data.channels))
  layers = []
  for name, net, arg in (("G", g, z), ("D", d, x)):
    params = net.init(jax.random.key(0), arg, train=False)
    jaxpr = jax.make_jaxpr(lambda p, a, net=net: net.apply(p, a, train=False))(
        params, arg)
    layers += [(name, e.invars[0].aval.shape, e.invars[1].aval.shape,
                dict(e.params)) for e in jaxpr.jaxpr.eqns
               if e.primitive.name == "conv_general_dilated"]
  return layers


def time_conv_layers(config, repeats: int):
  """Per convolution: forward + both gradients for K GANs, XLA's convolution
  per GAN vs matmul_conv under vmap, and the choice of conv="auto"."""
  k = gan_train.num_gans(config)
  for net, x_shape, w_shape, p in conv_layers(config):
    kw = dict(window_strides=p["window_strides"], padding=p["padding"],
              lhs_dilation=p["lhs_dilation"],
              dimension_numbers=p["dimension_numbers"])

    def grads(conv, x, w):
      loss = lambda x, w: jnp.sum(jnp.square(conv(x, w, **kw)))
      return jax.grad(loss, argnums=(0, 1))(x, w)
    x = jax.random.normal(jax.random.key(0), (k,) + x_shape)
    w = jax.random.normal(jax.random.key(1), (k,) + w_shape)
    per_gan = jax.jit(lambda x, w: [grads(jax.lax.conv_general_dilated,
                                          x[i], w[i]) for i in range(k)])
    batched = jax.jit(jax.vmap(functools.partial(
        grads, matmul_conv.conv_general_dilated)))
    ms = []
    for fn in (per_gan, batched):
      jax.block_until_ready(fn(x, w))
      ms.append(1e3 * best_time(lambda fn=fn: fn(x, w), repeats))
    auto = matmul_conv.prefers_matmul(x_shape, kw["window_strides"],
                                      kw["lhs_dilation"])
    forward = ""
    if max(kw["lhs_dilation"]) > 1:  # the two forwards of a transposed conv
      pads, dil = tuple(map(tuple, kw["padding"])), kw["lhs_dilation"]
      fwd_ms = []
      for conv in (matmul_conv.col2im_conv, matmul_conv.subpixel_conv):
        fn = jax.jit(jax.vmap(lambda x, w, conv=conv: conv(x, w, pads, dil,
                                                           {})))
        jax.block_until_ready(fn(x, w))
        fwd_ms.append(1e3 * best_time(lambda fn=fn: fn(x, w), repeats))
      forward = (f"; forward alone: col2im {fwd_ms[0]:.1f} ms, sub-pixel "
                 f"{fwd_ms[1]:.1f} ms")
    print(f"  {net} {'x'.join(map(str, x_shape[1:]))} * "
          f"{'x'.join(map(str, w_shape))} stride {kw['window_strides'][0]} "
          f"dilation {kw['lhs_dilation'][0]}: lax per GAN {ms[0]:7.1f} ms, "
          f"matmul vmapped {ms[1]:7.1f} ms; auto picks "
          f"{'matmul' if auto else 'lax'}{forward}", flush=True)


def profile_step(config) -> dict[str, float]:
  """Seconds of one K-GAN step per kind of op (step_profile.wall_shares)."""
  data = random_data(config)
  state = gan_train.create_state(config, jax.random.key(0))
  unstacked = cpu.selected(config) and cpu.holds_unstacked(config)
  step = jax.jit(gan_train.make_step(config, unstacked=unstacked))  # run twice
  gans = cpu.split(state.gans) if unstacked else state.gans
  shares, _ = step_profile.profile_call(step, gans, data.images, data.counts,
                                        state.step)
  return shares


def with_strategy(config, strategy: str, num_gans: int | None = None):
  """A copy of config with `strategy` ("vmap" or "vmap:matmul") and K."""
  config = config.copy_and_resolve_references()
  config.unlock()
  config.gan.strategy, _, conv = strategy.partition(":")
  config.gan.conv = conv or config.gan.conv
  if num_gans is not None:
    config.data.num_classes = num_gans
  return config


def report_step(name: str, r: dict[str, float], ceiling: float | None):
  frac = f" ({100 * r['flop_s'] / ceiling:.0f}% of ceiling)" if ceiling else ""
  print(f"  {name:18s} {r['img_s']:7.0f} img/s  {r['step_ms']:8.1f} ms/step  "
        f"compile {r['compile_s']:5.1f}s  model {r['flop_s'] / 1e9:6.1f} "
        f"GFLOP/s{frac}  executed {r['xla_flop_s'] / 1e9:6.1f} GFLOP/s  "
        f"XLA temp {r['temp_mb']:.0f} MB  peak RSS {r['rss_mb']:.0f} MB",
        flush=True)


def check_parts(what: Sequence[str]) -> set[str]:
  """The benchmark parts in `what`; raises on one that does not exist."""
  unknown = set(what) - set(RUNS)
  if unknown:
    raise ValueError(f"unknown benchmark part(s) {sorted(unknown)}; choose "
                     f"from {', '.join(RUNS)}")
  return set(what)


def run(config, strategies: Sequence[str] = ("auto",),
        what: Sequence[str] = DEFAULT_RUN,
        steps: int = 2, repeats: int = 3, synth_images: int = 73000) -> None:
  """Prints the benchmark's figures for `config` (see the module docstring;
  the arguments are the command's flags: `what` is --run)."""
  parts = check_parts(what)
  k = gan_train.num_gans(config)
  print(f"backend {jax.default_backend()} x{jax.device_count()}, "
        f"{config.gan.architecture} {config.data.image_size}x"
        f"{config.data.image_size}x{config.data.channels}, widths "
        f"{config.gan.g_width}/{config.gan.d_width}, batch "
        f"{config.gan.batch_size}/GAN, K={k}; auto -> "
        f"{cpu.gan_axis.resolve('auto', cpu.step_work(config))}", flush=True)
  ceiling = None
  if "ceiling" in parts:
    ceiling = matmul_ceiling()
    print(f"float32 matmul ceiling: {ceiling / 1e9:.1f} GFLOP/s", flush=True)
  step_rate = None
  if "step" in parts:
    print("K-GAN train step (random data):")
    flops = model_flops(config)
    for s in strategies:
      r = time_step(with_strategy(config, s), steps, repeats, flops)
      step_rate = step_rate or r["img_s"]
      report_step(s, r, ceiling)
  if "layers" in parts:
    print(f"Convolutions, forward + gradients of {k} GANs:")
    time_conv_layers(config, repeats)
  if "profile" in parts:
    for s in strategies:
      shares = profile_step(with_strategy(config, s))
      total = sum(shares.values())
      print(f"Where one step's time goes ({s}; per-op trace, ops running "
            f"together share the time): {1e3 * total:.0f} ms")
      for kind, sec in shares.items():
        print(f"  {kind:14s} {1e3 * sec:8.0f} ms {100 * sec / total:4.0f}%",
              flush=True)
  if "input" in parts:
    rate = input_throughput(config, 50, repeats)
    vs = f" = {rate / step_rate:.0f}x the step's use" if step_rate else ""
    print(f"input pipeline alone: {rate:.0f} img/s{vs}", flush=True)
  if "kcurve" in parts:
    strategy = strategies[0]
    print(f"K-curve ({strategy}): images/s, cost vs K x one GAN")
    one = None
    for kk in (1, 2, 5, 10):
      cfg = with_strategy(config, strategy, kk)
      r = time_step(cfg, steps, repeats, model_flops(cfg))
      one = one or r["step_ms"]
      print(f"  K={kk:2d} {r['img_s']:8.0f} img/s  {r['step_ms']:8.1f} ms/step"
            f"  = {r['step_ms'] / (kk * one):.2f} x K x one GAN", flush=True)
  if "synthesis" in parts:
    rate = synthesis_speed(config, synth_images, repeats)
    mapping = cpu.strategy(config)
    print(f"synthesis of {synth_images} images: {rate:.0f} img/s "
          f"({synth_images / rate:.1f}s, {mapping})", flush=True)
  if "refiner" in parts:
    n = config.procedural.num_per_class * config.data.num_classes
    rate = refiner_speed(config, 10 * steps, repeats)
    print(f"refiner (one R, {n} rendered and real images): {rate:.2f} "
          f"adversarial steps/s", flush=True)
  if "torch" in parts:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      print(f"torch reference skipped: {e}")
    else:
      device = torch_device(torch)
      rate = torch_speed(torch, config, steps, repeats, device)
      print(f"PyTorch reference ({k} GANs in a Python loop, {device}): "
            f"{rate:.0f} img/s", flush=True)


def main(argv):
  del argv
  try:
    check_parts(FLAGS.run)
  except ValueError as e:
    raise app.UsageError(f"--run: {e}") from None
  run(FLAGS.config, FLAGS.strategies, FLAGS.run, FLAGS.steps, FLAGS.repeats,
      FLAGS.synth_images)


if __name__ == "__main__":
  define_flags()
  app.run(main)
