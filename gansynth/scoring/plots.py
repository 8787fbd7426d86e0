"""The report's figures, as PNG files (matplotlib, no display needed).

Figures are built with `matplotlib.figure.Figure` directly, not pyplot, so no
global backend is set and nothing stays open between calls.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from matplotlib.figure import Figure
import numpy as np

from gansynth.runtime import image_grid

CURVES = (("d_loss", "D loss"), ("g_loss", "G loss"), ("d_real", "D(x)"),
          ("d_fake", "D(G(z))"))


def _save(fig: Figure, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  return path


def labelled_grid(images: np.ndarray, row_labels: Sequence[str],
                  col_labels: Sequence[str], title: str, path: str) -> str:
  """uint8 images [R, C, H, W, ch] as one picture with named rows/columns."""
  r, c, h, w, ch = images.shape
  picture = image_grid.grid(images)
  fig = Figure(figsize=(1.0 + 0.6 * c, 0.6 + 0.6 * r))
  ax = fig.add_subplot()
  ax.imshow(picture[..., 0] if ch == 1 else picture,
            cmap="gray" if ch == 1 else None, vmin=0, vmax=255)
  ax.set_yticks([1 + i * (h + 1) + h / 2 for i in range(r)], list(row_labels))
  ax.set_xticks([1 + j * (w + 1) + w / 2 for j in range(c)], list(col_labels),
                rotation=90 if max(map(len, col_labels), default=0) > 3 else 0)
  ax.tick_params(length=0)
  ax.set_title(title)
  return _save(fig, path)


def gan_curves_figure(rows: Sequence[Mapping], class_names: Sequence[str],
                      keys: Sequence[str] = tuple(dict(CURVES))) -> Figure:
  """`keys` of gan_metrics.jsonl over training, one line per GAN, two
  panels a row."""
  names = dict(CURVES)
  steps = [row["step"] for row in rows]
  cols = min(len(keys), 2)
  fig = Figure(figsize=(5.5 * cols, 3.5 * -(-len(keys) // cols)))
  axes = fig.subplots(-(-len(keys) // cols), cols, sharex=True, squeeze=False)
  for ax, key in zip(axes.flat, keys):
    values = np.array([np.atleast_1d(row[key]) for row in rows])
    for k in range(values.shape[1]):
      ax.plot(steps, values[:, k], lw=1, label=class_names[k])
    ax.set_title(names.get(key, key))
    ax.grid(alpha=0.3)
  for ax in axes[-1]:
    ax.set_xlabel("GAN step")
  axes[0, -1].legend(title="GAN", fontsize="small", ncol=2)
  return fig


def gan_curves(rows: Sequence[Mapping], class_names: Sequence[str],
               path: str) -> str:
  """D/G losses and D's mean outputs over training, one line per GAN."""
  return _save(gan_curves_figure(rows, class_names), path)


def confusion_matrices(matrices: Mapping[str, np.ndarray], path: str,
                       ncols: int = 4) -> str:
  """Row-normalised confusion matrices (rows = true class), one per name."""
  n = len(matrices)
  ncols = min(ncols, n)
  nrows = -(-n // ncols)
  fig = Figure(figsize=(3.4 * ncols, 3.4 * nrows))
  axes = np.atleast_1d(fig.subplots(nrows, ncols)).flat
  for (name, m), ax in zip(matrices.items(), axes):
    m = np.asarray(m, np.float64)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    k = len(m)
    for i in range(k):
      for j in range(k):
        if m[i, j]:
          ax.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center",
                  fontsize=6, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(name, fontsize=9)
  for ax in axes:  # The cells zip left unused.
    ax.set_axis_off()
  return _save(fig, path)


def low_data_curves(fractions: Sequence[float],
                    series: Mapping[str, Sequence[tuple[float, float]]],
                    num_real: int, path: str) -> str:
  """Test accuracy (mean +- std over seeds) against the real labels used."""
  fig = Figure(figsize=(6.5, 4.2))
  ax = fig.add_subplot()
  x = [f * num_real for f in fractions]
  for name, points in series.items():
    mean, std = np.array(points, np.float64).T
    ax.errorbar(x, 100 * mean, yerr=100 * std, marker="o", capsize=3,
                label=name)
  ax.set_xscale("log")
  ax.set_xlabel("real labelled training images")
  ax.set_ylabel("real test accuracy (%)")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize="small")
  return _save(fig, path)
