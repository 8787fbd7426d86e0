"""Sample grids as PNG files a user can open (rows = classes)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def grid(images: np.ndarray, pad: int = 1) -> np.ndarray:
  """uint8 [R, C, H, W, ch] -> one uint8 [R*(H+pad)+pad, C*(W+pad)+pad, ch]."""
  r, c, h, w, ch = images.shape
  out = np.full((r * (h + pad) + pad, c * (w + pad) + pad, ch), 128, np.uint8)
  for i in range(r):
    for j in range(c):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + h, x:x + w] = images[i, j]
  return out


def save_grid(path: str, images: np.ndarray, min_cell: int = 32) -> str:
  """Writes a [R, C, H, W, ch] uint8 grid, upscaled so small images show.

  A single long row (one unconditional GAN) is folded into a square.
  """
  r, c = images.shape[:2]
  side = int(round(c ** 0.5))
  if r == 1 and c > 16 and side * side == c:
    images = images.reshape((side, side) + images.shape[2:])
  scale = max(1, -(-min_cell // images.shape[2]))
  if scale > 1:
    images = images.repeat(scale, axis=2).repeat(scale, axis=3)
  g = grid(images)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g).save(path)
  return path


def per_class_grid(images: np.ndarray, labels: np.ndarray, num_classes: int,
                   per_class: int) -> np.ndarray:
  """The first `per_class` images of each class: uint8 [K, per_class, ...]."""
  rows = []
  for k in range(num_classes):
    row = images[labels == k][:per_class]
    pad = np.zeros((per_class - len(row),) + images.shape[1:], np.uint8)
    rows.append(np.concatenate([row, pad]))
  return np.stack(rows)
