"""Convolutions as im2col matrix products, a drop-in for lax.conv_general_dilated.

Why: XLA:CPU runs some convolutions (small grids with many channels, and
transposed ones) far below its matrix-product speed (docs/benchmarks.md).
Written as patches @ kernel, the forward pass is one matmul and autodiff makes
the gradients matmuls too (plus slices and pads); a `jax.vmap` over K GANs'
kernels becomes a batched matmul instead of a grouped convolution.

`conv_general_dilated` takes lax.conv_general_dilated's arguments (ops.py
calls it for the models' convolution primitives), for NHWC inputs and HWIO
kernels:
  * no input dilation: strided slices gather the k*k windows, one matmul;
  * input dilation d with stride 1 (a transposed convolution): col2im, every
    input pixel times every tap in one matmul, then each output phase sums
    its taps' shifted columns; its gradients (a custom VJP) stack strided
    windows of the output gradient once and are two more matmuls. No product
    with the inserted zeros is computed. `subpixel_conv` (d*d phase
    convolutions with only the taps that meet input pixels) is the other way
    to write it, kept for `gansynth.tools.bench --run=layers` to compare (col2im
    and its VJP measured faster).
Anything else (kernel dilation, groups, other layouts) goes to lax unchanged.
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1),
                                   ("NHWC", "HWIO", "NHWC"))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """lax.conv_general_dilated computed with matrix products where it can."""
  nsp = lhs.ndim - 2
  strides = tuple(window_strides)
  lhs_dil = tuple(lhs_dilation or (1,) * nsp)
  rhs_dil = tuple(rhs_dilation or (1,) * nsp)
  dnums = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  supported = (nsp == 2 and dnums == _NHWC and feature_group_count == 1
               and batch_group_count == 1 and set(rhs_dil) == {1}
               and (set(lhs_dil) == {1} or
                    (set(strides) == {1} and not isinstance(padding, str))))
  if not supported:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers, feature_group_count, batch_group_count, precision,
        preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides,
                                  padding)
  padding = tuple(tuple(p) for p in padding)
  if set(lhs_dil) != {1}:
    return _transposed_conv(lhs, rhs, padding, lhs_dil, precision,
                            preferred_element_type)
  mm = dict(precision=precision, preferred_element_type=preferred_element_type)
  return _im2col_conv(lhs, rhs, strides, padding, mm)


def _patches(x, kh: int, kw: int, strides, padding, reverse: bool = False):
  """[N, H, W, C] -> [N, OH, OW, kh*kw*C]: the (padded) kh x kw windows at
  `strides`, taps in row-major order (last tap first if `reverse`), as
  strided slices stacked once."""
  x = lax.pad(x, jnp.zeros((), x.dtype),
              [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in padding] + [(0, 0, 0)])
  n, h, wd, c = x.shape
  oh, ow = (h - kh) // strides[0] + 1, (wd - kw) // strides[1] + 1
  if (kh, kw) == (1, 1) and tuple(strides) == (1, 1):
    return x
  cols = [lax.slice(x, (0, i, j, 0),
                    (n, i + (oh - 1) * strides[0] + 1,
                     j + (ow - 1) * strides[1] + 1, c),
                    (1, strides[0], strides[1], 1))
          for i, j in itertools.product(range(kh), range(kw))]
  if reverse:
    cols = cols[::-1]
  return jnp.stack(cols, axis=3).reshape(n, oh, ow, kh * kw * c)


def _im2col_conv(x, w, strides, padding, mm):
  """[N, H, W, C] (*) [kh, kw, C, O]: window slices stacked, then one matmul."""
  kh, kw, c, o = w.shape
  return jnp.einsum("nhwq,qo->nhwo", _patches(x, kh, kw, strides, padding),
                    w.reshape(kh * kw * c, o), **mm)


def phase_taps(size: int, taps: int, dilation: int, pad_lo: int, pad_hi: int):
  """1-D plan of an input-dilated stride-1 convolution split into phases.

  Output o = dilation * p + r reads input m = p + e with kernel tap
  q = dilation * e - r + pad_lo. Returns (index [T, dilation] of the tap used
  by window position t in phase r, `taps` where none (a zero), the input
  padding (lo, hi) for a VALID T-window, the output length, the per-phase
  length).
  """
  out = (size - 1) * dilation + 1 + pad_lo + pad_hi - taps + 1
  offsets = [(r + q - pad_lo) // dilation
             for r in range(dilation) for q in range(taps)
             if (r + q - pad_lo) % dilation == 0]
  e_min, e_max = min(offsets), max(offsets)
  index = np.full((e_max - e_min + 1, dilation), taps, np.int32)
  for t in range(e_max - e_min + 1):
    for r in range(dilation):
      q = dilation * (t + e_min) - r + pad_lo
      if 0 <= q < taps:
        index[t, r] = q
  per_phase = -(-out // dilation)
  return index, (-e_min, per_phase - 1 + e_max - (size - 1)), out, per_phase


def subpixel_conv(x, w, padding, lhs_dil, mm):
  """Input-dilated stride-1 conv as d*d undilated convs, one per output phase.

  Phase (rh, rw) uses only the kernel taps that meet input pixels (2x2, 2x3,
  3x2 and 3x3 of a 5x5 kernel at d=2), so no product with an inserted zero
  is computed; the phases are then interleaved.
  """
  kh, kw, c, o = w.shape
  (ih, pad_h, out_h, mh), (iw, pad_w, out_w, mw) = (
      phase_taps(x.shape[1], kh, lhs_dil[0], *padding[0]),
      phase_taps(x.shape[2], kw, lhs_dil[1], *padding[1]))
  x = lax.pad(x, jnp.zeros((), x.dtype),
              [(0, 0, 0), (*pad_h, 0), (*pad_w, 0), (0, 0, 0)])
  n = x.shape[0]
  phases = []
  for rh in range(ih.shape[1]):
    for rw in range(iw.shape[1]):
      th, tw = np.flatnonzero(ih[:, rh] < kh), np.flatnonzero(iw[:, rw] < kw)
      if not (th.size and tw.size):
        phases.append(jnp.zeros((n, mh, mw, o), x.dtype))
        continue
      kernel = w[ih[th, rh][:, None], iw[tw, rw][None, :]]  # [Th, Tw, C, O]
      window = lax.slice(x, (0, th[0], tw[0], 0),
                         (n, th[-1] + mh, tw[-1] + mw, c))
      phases.append(_im2col_conv(window, kernel, (1, 1), ((0, 0), (0, 0)),
                                 mm))
  dh, dw = ih.shape[1], iw.shape[1]
  y = jnp.stack(phases, axis=3).reshape(n, mh, mw, dh, dw, o)
  y = y.transpose(0, 1, 3, 2, 4, 5).reshape(n, mh * dh, mw * dw, o)
  return y[:, :out_h, :out_w]


def _col2im_kernel(w):
  """HWIO [kh, kw, C, O] -> [C, kh*kw*O], taps row-major."""
  kh, kw, c, o = w.shape
  return w.transpose(2, 0, 1, 3).reshape(c, kh * kw * o)


def col2im_conv(x, w, padding, lhs_dil, mm):
  """Input-dilated stride-1 conv as every input pixel times every tap (one
  matmul, [N*H*W, C] @ [C, kh*kw*O]), then each output phase sums its taps'
  columns, shifted: no window copies of the input.
  """
  kh, kw, c, o = w.shape
  n, h, wd = x.shape[:3]
  (ih, pad_h, out_h, mh), (iw, pad_w, out_w, mw) = (
      phase_taps(h, kh, lhs_dil[0], *padding[0]),
      phase_taps(wd, kw, lhs_dil[1], *padding[1]))
  cols = jnp.einsum("nhwc,cq->nhwq", x, _col2im_kernel(w), **mm)
  cols = cols.reshape(n, h, wd, kh, kw, o)
  dh, dw = lhs_dil
  phases = []
  for rh in range(dh):
    for rw in range(dw):
      # Phase position p gets input p + t - pad_lo through tap index[t, r].
      acc = jnp.zeros((n, mh, mw, o), cols.dtype)
      for th in np.flatnonzero(ih[:, rh] < kh):
        for tw in np.flatnonzero(iw[:, rw] < kw):
          e_h, e_w = th - pad_h[0], tw - pad_w[0]
          acc += lax.pad(cols[:, :, :, ih[th, rh], iw[tw, rw]],
                         jnp.zeros((), cols.dtype),
                         [(0, 0, 0), (-e_h, mh + e_h - h, 0),
                          (-e_w, mw + e_w - wd, 0), (0, 0, 0)])
      phases.append(acc)
  y = jnp.stack(phases, axis=3).reshape(n, mh, mw, dh, dw, o)
  y = y.transpose(0, 1, 3, 2, 4, 5).reshape(n, mh * dh, mw * dw, o)
  return y[:, :out_h, :out_w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _transposed_conv(x, w, padding, lhs_dil, precision, preferred_type):
  """A transposed convolution by col2im_conv, with the gradients of
  _transposed_bwd (autodiff of col2im_conv scatters into the large column
  tensor once per tap, measured slower)."""
  return col2im_conv(x, w, padding, lhs_dil,
                     dict(precision=precision,
                          preferred_element_type=preferred_type))


def _transposed_fwd(x, w, padding, lhs_dil, precision, preferred_type):
  return _transposed_conv(x, w, padding, lhs_dil, precision,
                          preferred_type), (x, w)


def _transposed_bwd(padding, lhs_dil, precision, preferred_type, res, dy):
  """col2im's transpose, written so both gradients are single matmuls.

  Forward, input pixel m adds cols[m, q] = x[m] @ w[q] to output
  d*m + pad_lo - q. So dcols[m, q] = dy[d*m + pad_lo - q] (zero outside):
  strided windows of dy, stacked once (a gather, not the 25 scatters that
  autodiff of col2im_conv makes); then dx = dcols @ W^T and dW = x^T @ dcols
  contract over taps x out-channels and over pixels.
  """
  x, w = res
  kh, kw, c, o = w.shape
  h, wd = x.shape[1:3]
  (lo_h, _), (lo_w, _) = padding
  d_h, d_w = lhs_dil
  # Windows of dy at stride d, padded so every d*m + lo - q is in range
  # (negative = crop). Window offset i is tap kh-1-i, so the windows are
  # stacked last first: taps in the forward's order, and the forward's
  # [C, kh*kw*O] kernel matrix is reused (no flipped copy of the kernel).
  pads = ((kh - 1 - lo_h, d_h * (h - 1) + lo_h - (dy.shape[1] - 1)),
          (kw - 1 - lo_w, d_w * (wd - 1) + lo_w - (dy.shape[2] - 1)))
  dcols = _patches(dy, kh, kw, lhs_dil, pads, reverse=True)
  mm = dict(precision=precision, preferred_element_type=preferred_type)
  dx = jnp.einsum("nhwq,cq->nhwc", dcols, _col2im_kernel(w), **mm)
  dw = jnp.einsum("nhwc,nhwq->cq", x, dcols, **mm)
  dw = dw.reshape(c, kh, kw, o).transpose(1, 2, 0, 3)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_transposed_conv.defvjp(_transposed_fwd, _transposed_bwd)


def conv_transpose_padding(kernel_size: Sequence[int],
                           strides: Sequence[int]) -> list[tuple[int, int]]:
  """The explicit padding lax.conv_transpose(padding="SAME") uses.

  With it, an input-dilated (by `strides`) stride-1 convolution computes
  nn.ConvTranspose(strides=strides, padding="SAME") (transpose_kernel=False).
  """
  pads = []
  for k, s in zip(kernel_size, strides):
    pad_len = k + s - 2
    pad_a = k - 1 if s > k - 1 else -(-pad_len // 2)
    pads.append((pad_a, pad_len - pad_a))
  return pads


CONVS = ("auto", "lax", "matmul")
# The CPU rule of conv="auto" (see prefers_matmul).
MATMUL_MAX_DILATED_INPUT = 16  # transposed convs from grids up to 16x16
MATMUL_MAX_OUTPUT = 4  # other convs onto grids up to 4x4


def conv_function(conv: str):
  """The conv_general_dilated for config.gan.conv (None: lax's)."""
  if conv not in CONVS:
    raise ValueError(f"config.gan.conv={conv!r}; choose one of {CONVS}")
  return {"lax": None, "matmul": conv_general_dilated,
          "auto": auto_conv_general_dilated}[conv]


def prefers_matmul(lhs_shape, window_strides, lhs_dilation=None,
                   backend: str | None = None) -> bool:
  """The rule of conv="auto": matmul where XLA's own convolution is slow.

  XLA:CPU's convolutions are fast on large grids and slow on small grids
  with many channels and on input-dilated (transposed) ones; on large grids
  the im2col copies of strided convs cost more than they save (`python -m
  gansynth.tools.bench --run=layers`, docs/benchmarks.md). On GPU/TPU, XLA's
  convolutions are used.
  """
  if (backend or jax.default_backend()) != "cpu":
    return False
  grid = min(lhs_shape[1:3])  # NHWC
  if lhs_dilation is not None and max(lhs_dilation) > 1:
    return grid <= MATMUL_MAX_DILATED_INPUT
  out = -(-grid // max(window_strides))
  return out <= MATMUL_MAX_OUTPUT


def auto_conv_general_dilated(lhs, rhs, window_strides, padding,
                              lhs_dilation=None, rhs_dilation=None,
                              dimension_numbers=None, **kwargs):
  """conv_general_dilated or lax's, per layer, by `prefers_matmul`."""
  fn = (conv_general_dilated if prefers_matmul(
      lhs.shape, window_strides, lhs_dilation)
        else lax.conv_general_dilated)
  return fn(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
            dimension_numbers, **kwargs)
