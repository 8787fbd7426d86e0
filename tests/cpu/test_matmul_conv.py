"""matmul_conv computes lax's convolutions, forward and gradients, as matmuls."""

import chex
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from gansynth.cpu import matmul_conv

NHWC = ("NHWC", "HWIO", "NHWC")


def value_and_grads(conv, x, w, **kw):
  loss = lambda x, w: jnp.sum(jnp.sin(conv(x, w, dimension_numbers=NHWC,
                                            **kw)))
  return jax.value_and_grad(loss, argnums=(0, 1))(x, w)


def check_against_lax(x_shape, w_shape, **kw):
  kx, kw_ = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, x_shape)
  w = jax.random.normal(kw_, w_shape) / np.sqrt(np.prod(w_shape[:3]))
  want = value_and_grads(lax.conv_general_dilated, x, w, **kw)
  got = value_and_grads(matmul_conv.conv_general_dilated, x, w, **kw)
  chex.assert_trees_all_close(got, want, atol=1e-4, rtol=1e-4)
  y = matmul_conv.conv_general_dilated(x, w, dimension_numbers=NHWC, **kw)
  assert y.shape == lax.conv_general_dilated(x, w, dimension_numbers=NHWC,
                                             **kw).shape


@pytest.mark.parametrize("size", [4, 7])
@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 1), (5, 2), (4, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 1), (0, 3))])
def test_strided_conv_matches_lax(size, kernel, stride, padding):
  if padding == "VALID" and size < kernel:
    pytest.skip("no output")
  check_against_lax((2, size, size + 1, 3), (kernel, kernel, 3, 5),
                    window_strides=(stride, stride), padding=padding)


@pytest.mark.parametrize("size", [1, 4, 7])
@pytest.mark.parametrize("kernel,dilation", [(5, 2), (4, 2), (3, 3), (1, 2)])
def test_transposed_conv_matches_lax(size, kernel, dilation):
  """Input-dilated convs: lax.conv_transpose(SAME) padding and an odd one."""
  for padding in (matmul_conv.conv_transpose_padding((kernel, kernel),
                                                     (dilation, dilation)),
                  ((kernel - 1, 0), (1, kernel - 2))):
    check_against_lax((2, size, size, 3), (kernel, kernel, 3, 4),
                      window_strides=(1, 1), padding=padding,
                      lhs_dilation=(dilation, dilation))
    # The sub-pixel form, which bench --run=layers times against col2im.
    x = jax.random.normal(jax.random.key(2), (2, size, size, 3))
    w = jax.random.normal(jax.random.key(3), (kernel, kernel, 3, 4))
    pads = tuple(map(tuple, padding))
    np.testing.assert_allclose(
        matmul_conv.subpixel_conv(x, w, pads, (dilation, dilation), {}),
        lax.conv_general_dilated(x, w, (1, 1), pads, (dilation, dilation),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC")),
        atol=1e-4, rtol=1e-4)


def test_conv_transpose_padding_is_laxs():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
  w = jax.random.normal(jax.random.key(1), (5, 5, 3, 6))
  want = lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=NHWC)
  got = matmul_conv.conv_general_dilated(
      x, w, (1, 1), matmul_conv.conv_transpose_padding((5, 5), (2, 2)),
      lhs_dilation=(2, 2), dimension_numbers=NHWC)
  chex.assert_trees_all_close(got, want, atol=1e-5)


@pytest.mark.parametrize("kw", [
    dict(window_strides=(1, 1), padding="SAME", feature_group_count=3),
    dict(window_strides=(1, 1), padding="VALID", rhs_dilation=(2, 2)),
    dict(window_strides=(2, 2), padding=((1, 1), (1, 1)),
         lhs_dilation=(2, 2)),
], ids=["grouped", "kernel_dilated", "dilated_and_strided"])
def test_other_convs_go_to_lax(kw):
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
  w = jax.random.normal(jax.random.key(1), (3, 3, 6 // kw.get(
      "feature_group_count", 1), 6))
  check_against_lax(x.shape, w.shape, **kw)


def test_vmap_over_kernels_is_a_batched_matmul():
  """The point of matmul convs: no grouped convolution under jax.vmap."""
  x = jnp.ones((3, 2, 8, 8, 4))
  w = jnp.ones((3, 5, 5, 4, 6))

  def step(x, w):
    return value_and_grads(matmul_conv.conv_general_dilated, x, w,
                           window_strides=(2, 2), padding="SAME")
  jaxpr = str(jax.make_jaxpr(jax.vmap(step))(x, w))
  assert "conv_general_dilated" not in jaxpr
  assert "dot_general" in jaxpr
  grouped = str(jax.make_jaxpr(jax.vmap(lambda x, w: value_and_grads(
      lax.conv_general_dilated, x, w, window_strides=(2, 2),
      padding="SAME")))(x, w))
  assert "feature_group_count=3" in grouped  # what vmap of lax's conv does


def test_auto_rule():
  # Transposed convs from up to 16x16, convs onto up to 4x4: matmul on CPU.
  assert matmul_conv.prefers_matmul((64, 4, 4, 256), (1, 1), (2, 2),
                                    backend="cpu")
  assert matmul_conv.prefers_matmul((64, 8, 8, 128), (2, 2), backend="cpu")
  assert not matmul_conv.prefers_matmul((64, 16, 16, 64), (2, 2),
                                        backend="cpu")
  assert matmul_conv.prefers_matmul((64, 16, 16, 64), (1, 1), (2, 2),
                                    backend="cpu")
  assert not matmul_conv.prefers_matmul((64, 32, 32, 3), (1, 1), (2, 2),
                                        backend="cpu")
  for backend in ("gpu", "tpu"):
    assert not matmul_conv.prefers_matmul((64, 4, 4, 256), (2, 2),
                                          backend=backend)
  with pytest.raises(ValueError, match="config.gan.conv='fft'"):
    matmul_conv.conv_function("fft")
