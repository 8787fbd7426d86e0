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


def _font(size: int = 12):
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1: the fixed bitmap font
    return ImageFont.load_default()


def labelled_grid(generated: np.ndarray, real: np.ndarray,
                  row_names: list[str], min_cell: int = 32) -> np.ndarray:
  """One row per class: its name, real images, then generated ones.

  uint8 [K, n, H, W, C] and [K, m, H, W, C] -> one uint8 RGB picture, each
  image scaled up (nearest) to at least `min_cell` pixels so an 8x8 digit
  is readable.
  """
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  scale = max(1, -(-min_cell // generated.shape[2]))

  def block(images):
    if images.shape[-1] == 1:
      images = images.repeat(3, axis=-1)
    return grid(images.repeat(scale, axis=2).repeat(scale, axis=3), pad=2)

  fake, true = block(generated), block(real)
  font = _font()
  measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  width = lambda text: measure.textbbox((0, 0), text, font=font)[2]
  label_w = 8 + max(width(n) for n in list(row_names))
  head, gap = 18, 10
  h = head + max(fake.shape[0], true.shape[0])
  w = label_w + true.shape[1] + gap + fake.shape[1]
  picture = Image.new("RGB", (w, h), (235, 235, 235))
  picture.paste(Image.fromarray(true), (label_w, head))
  picture.paste(Image.fromarray(fake), (label_w + true.shape[1] + gap, head))
  draw = ImageDraw.Draw(picture)
  draw.text((label_w, 2), "real", fill=(0, 0, 0), font=font)
  draw.text((label_w + true.shape[1] + gap, 2), "generated", fill=(0, 0, 0),
            font=font)
  cell = generated.shape[2] * scale + 2
  for k, name in enumerate(row_names):
    y = head + 2 + k * cell + cell // 2 - 8
    draw.text((4, y), str(name), fill=(0, 0, 0), font=font)
  return np.asarray(picture)


def save_image(path: str, picture: np.ndarray) -> str:
  """Writes a uint8 [H, W, 3] (or [H, W, 1]) picture as a PNG file."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture
                  ).save(path)
  return path
