"""gansynth.tools.bench runs end to end on a tiny config and prints every figure."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

from gansynth import notebook_utils
from gansynth.tools import bench


@pytest.mark.slow  # ~2.5 min of compiles on 2 CPU cores
def test_bench_prints_step_kcurve_input_synthesis_and_refiner():
  cmd = [sys.executable, "-m", "gansynth.tools.bench",
         "--config", "configs/quickstart.py:tiny", "--config.gan.batch_size=4",
         "--config.gan.architecture=study",
         "--strategies=auto,unroll:auto,vmap:matmul",
         "--run=step,layers,profile,input,kcurve,synthesis,torch,refiner",
         "--steps=1",
         "--repeats=1", "--synth_images=40"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                       cwd=REPO,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout
  assert "auto -> conv_unroll" in out
  for name in ("auto", "unroll:auto", "vmap:matmul"):
    assert re.search(rf"^  {re.escape(name)} +\d+ img/s .* model +[\d.]+ "
                     r"GFLOP/s .* executed", out, re.M), out
  for k in (1, 2, 5, 10):
    assert re.search(rf"K={k:2d} +\d+ img/s", out), out
  assert re.search(r"^  D 8x8x1 \* 3x3x1x4 stride 1 dilation 1: lax per GAN "
                   r"+[\d.]+ ms, matmul vmapped +[\d.]+ ms; auto picks lax",
                   out, re.M), out
  for name in ("auto", "unroll:auto", "vmap:matmul"):
    assert re.search(rf"^Where one step's time goes \({re.escape(name)};.*: "
                     r"\d+ ms$", out, re.M), out
  for kind in ("matmul", "convolution", "data movement", "element-wise",
               "untraced"):
    assert len(re.findall(rf"^  {kind} +\d+ ms +\d+%$", out, re.M)) == 3, out
  assert re.search(r"input pipeline alone: \d+ img/s = \d+x", out), out
  assert re.search(r"synthesis of 40 images: \d+ img/s", out), out
  assert re.search(r"^refiner \(one R, \d+ rendered and real images\): "
                   r"[\d.]+ adversarial steps/s$", out, re.M), out
  assert "PyTorch reference" in out or "torch reference skipped" in out


@pytest.mark.slow  # ~30 s
def test_layer_timings_show_both_forwards_of_transposed_convs():
  cmd = [sys.executable, "-m", "gansynth.tools.bench",
         "--config", "configs/quickstart.py:tiny",
         "--config.gan.architecture=dcgan", "--config.gan.batch_size=4",
         "--run=layers", "--repeats=1"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                       cwd=REPO,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout
  generator = re.findall(r"^  G .* dilation 2: .*; forward alone: col2im "
                         r"[\d.]+ ms, sub-pixel [\d.]+ ms$", out, re.M)
  assert len(generator) == 3, out  # 1x1 -> 2x2 -> 4x4 -> 8x8
  assert re.search(r"^  D .* dilation 1: .*auto picks \w+$", out, re.M), out


class _FakeTorch:
  """Just enough of torch for bench.torch_device."""

  def __init__(self, cuda: bool):
    self.cuda = type("cuda", (), {"is_available": staticmethod(lambda: cuda)})


@pytest.mark.parametrize("backend,cuda,expected", [
    ("gpu", True, "cuda"),  # like for like on a GPU
    ("gpu", False, "cpu"),  # a torch build without CUDA
    ("cpu", True, "cpu"),   # JAX on the CPU: so is the reference
    ("tpu", False, "cpu"),
])
def test_torch_reference_runs_where_jax_runs(monkeypatch, backend, cuda,
                                             expected):
  monkeypatch.setattr(bench.jax, "default_backend", lambda: backend)
  assert bench.torch_device(_FakeTorch(cuda)) == expected


def test_run_rejects_an_unknown_part_before_measuring(capsys):
  config = notebook_utils.load_config("quickstart")
  with pytest.raises(ValueError, match=r"unknown benchmark part\(s\) "
                     r"\['stepp'\]; choose from"):
    bench.run(config, what=("ceiling", "stepp"))
  assert capsys.readouterr().out == ""  # nothing was timed first
