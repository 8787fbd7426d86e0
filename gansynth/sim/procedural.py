"""Procedural digit renderer: a cheap "simulator" source of labelled images.

Each image is one digit drawn with a random TrueType font, size, position,
rotation, shear, stroke width and colour on a solid or gradient background,
with (SVHN preset) parts of neighbouring digits at the sides, distractor
shapes, blur, gaussian noise and JPEG artefacts, or (MNIST preset) white
strokes on black fitted to a 20x20 box and centred by centre of mass.

Images are drawn at `supersample` times the output size and box-downsampled,
which anti-aliases edges the way a camera does. Image ``i`` of a data set is
rendered from ``np.random.default_rng([seed, i])`` alone, so data sets are
reproducible and identical for any number of worker processes.
"""

from __future__ import annotations

import colorsys
import concurrent.futures
import fnmatch
import functools
import glob
import hashlib
import io
import math
import multiprocessing
import os
import types
from typing import Sequence

import ml_collections
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gansynth.runtime import progress

DIGITS = "0123456789"
_FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")
_CHUNK_SIZE = 1000
class NoFontError(ValueError):
  """No usable TrueType font with digit glyphs was found."""


def _bundled_font_dir() -> str:
  """The TrueType fonts matplotlib (a dependency) ships: DejaVu, STIX and
  Computer Modern, the same files wherever that matplotlib is installed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def _system_font_dirs() -> list[str]:
  """Where Debian font packages and matplotlib put TrueType fonts."""
  dirs = ["/usr/share/fonts", "/usr/local/share/fonts",
          os.path.expanduser("~/.local/share/fonts"),
          os.path.expanduser("~/.fonts")]
  try:
    dirs.append(_bundled_font_dir())
  except ImportError:
    pass
  return dirs


# ----------------------------------------------------------------- fonts ----


def _candidate_fonts(specs: Sequence[str]) -> list[str]:
  paths = []
  for spec in specs:
    spec = os.path.expanduser(spec)
    if os.path.isdir(spec):
      for root, _, files in os.walk(spec):
        paths += [os.path.join(root, f) for f in files]
    elif glob.has_magic(spec):
      paths += glob.glob(spec, recursive=True)
    elif os.path.isfile(spec):
      paths.append(spec)
  return [p for p in paths if p.lower().endswith(_FONT_EXTENSIONS)]


def _has_digits(path: str) -> bool:
  """Whether the font draws ten distinct, non-empty digit glyphs."""
  try:
    font = ImageFont.truetype(path, 24)
  except OSError:
    return False
  masks = set()
  for ch in DIGITS:
    mask = font.getmask(ch)
    if mask.getbbox() is None:
      return False
    masks.add((mask.size, bytes(mask)))
  return len(masks) == len(DIGITS)


@functools.lru_cache(maxsize=None)
def _resolve_fonts(specs: tuple[str, ...],
                   exclude: tuple[str, ...]) -> tuple[str, ...]:
  searched = []
  for spec in specs or ("bundled",):
    searched += (_system_font_dirs() if spec == "system" else
                 [_bundled_font_dir()] if spec == "bundled" else [spec])
  paths = sorted({os.path.realpath(p) for p in _candidate_fonts(searched)})
  paths = [p for p in paths
           if not any(fnmatch.fnmatch(os.path.basename(p), e) for e in exclude)]
  # Same font installed twice (system and matplotlib): keep one, by name.
  by_name = {}
  for p in paths:
    by_name.setdefault(os.path.basename(p), p)
  fonts = tuple(p for p in sorted(by_name.values()) if _has_digits(p))
  if not fonts:
    where = ", ".join(searched)
    raise NoFontError(
        f"no TrueType font with digit glyphs found in: {where}. Install one "
        "(`apt-get install fonts-dejavu-core` or `pip install matplotlib`) or "
        "set config.fonts to font files, directories or glob patterns.")
  return fonts


def find_fonts(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """Usable font paths for `config`, sorted so every process agrees."""
  return _resolve_fonts(tuple(config.fonts), tuple(config.font_exclude))


@functools.lru_cache(maxsize=None)
def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def font_record(config: ml_collections.ConfigDict) -> list[dict[str, str]]:
  """The fonts `config` renders with: file name and sha256 of each, so a
  stamp tells whether two machines drew with the same fonts."""
  return [{"name": os.path.basename(p), "sha256": _sha256(p)}
          for p in find_fonts(config)]


@functools.lru_cache(maxsize=4096)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
  return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=None)
def _digit_height_per_em(path: str) -> float:
  """Ink height of the digits per font-size unit, to size fonts by ink."""
  _, top, _, bottom = _font(path, 100).getbbox(DIGITS)
  return max(bottom - top, 1) / 100.0


# ---------------------------------------------------------------- render ----


def _params(config: ml_collections.ConfigDict) -> types.SimpleNamespace:
  """Plain attribute access: ConfigDict lookups dominate small renders."""
  def convert(d):
    return types.SimpleNamespace(**{
        k: convert(v) if isinstance(v, dict) else v for k, v in d.items()})
  return convert(config.to_dict())


def _uniform(rng: np.random.Generator, bounds) -> float:
  lo, hi = bounds
  return lo if hi <= lo else float(rng.uniform(lo, hi))


def _luminance(rgb) -> float:
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _random_color(rng: np.random.Generator, gray: bool,
                  max_saturation: float) -> np.ndarray:
  """Mostly muted colours, like paint and brick under daylight."""
  saturation = 0.0 if gray else max_saturation * rng.random() ** 2
  rgb = colorsys.hsv_to_rgb(rng.random(), saturation, rng.random())
  return np.array(rgb, np.float32) * 255


def _contrasting_color(rng: np.random.Generator, gray: bool,
                       max_saturation: float, avoid: tuple[float, float],
                       margin: float) -> np.ndarray:
  """A colour whose luminance is at least `margin` outside `avoid`.

  Luminance is linear in HSV value, so hue and saturation are drawn freely
  and the value is drawn from the luminances that keep the margin.
  """
  saturation = 0.0 if gray else max_saturation * rng.random() ** 2
  full = np.array(colorsys.hsv_to_rgb(rng.random(), saturation, 1.0)) * 255
  top = _luminance(full)
  below = max(0.0, avoid[0] - margin)
  above = max(0.0, top - (avoid[1] + margin))
  if below + above <= 0:  # Black or white, whichever stands out more.
    return np.full(3, 0.0 if sum(avoid) > 255 else 255.0, np.float32)
  u = rng.uniform(0, below + above)
  lum = u if u < below else avoid[1] + margin + (u - below)
  return (full * (lum / top)).astype(np.float32)


def _colors(rng: np.random.Generator, p) -> tuple[np.ndarray, ...]:
  """(bg start, bg end, fg start, fg end); fg is None for a solid digit."""
  c = p.colors
  if c.fixed:
    return (np.asarray(c.background, np.float32), None,
            np.asarray(c.foreground, np.float32), None)
  gray = rng.random() < c.gray_prob
  bg0 = _random_color(rng, gray, c.max_saturation)
  bg1 = None
  lums = [_luminance(bg0)]
  if rng.random() < c.gradient_prob:
    shift = rng.uniform(-c.gradient_range, c.gradient_range)
    bg1 = np.clip(bg0 + shift * (1 + 0.2 * rng.uniform(-1, 1, 3)), 0, 255)
    lums.append(_luminance(bg1))
  fg0 = _contrasting_color(rng, gray, c.max_saturation,
                           (min(lums), max(lums)), c.min_contrast * 255)
  fg1 = None
  if rng.random() < c.digit_gradient_prob:
    away = fg0 - np.mean(lums)
    fg1 = np.clip(fg0 + away * rng.uniform(0, 0.5), 0, 255)
  return bg0, bg1, fg0, fg1


@functools.lru_cache(maxsize=64)
def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  return ys / max(height - 1, 1), xs / max(width - 1, 1)


def _gradient(rng: np.random.Generator, height: int, width: int,
              start: np.ndarray, end: np.ndarray | None) -> np.ndarray:
  """A linear colour ramp in a random direction (solid if `end` is None)."""
  if end is None:
    return np.broadcast_to(start, (height, width, 3))
  angle = rng.uniform(0, 2 * math.pi)
  ys, xs = _coords(height, width)
  cos, sin = math.cos(angle), math.sin(angle)
  t = xs * cos + ys * sin
  t = (t - min(0, cos) - min(0, sin)) / (abs(cos) + abs(sin))
  return start + t[..., None] * (end - start)


def _draw_distractors(rng, draw: ImageDraw.ImageDraw, canvas: tuple[int, int],
                      count: int, p) -> None:
  """Lines, boxes and ellipses: plaque edges, cables and clutter."""
  width, height = canvas
  for _ in range(count):
    color = tuple(int(v) for v in _random_color(
        rng, False, p.colors.max_saturation))
    line_width = max(1, int(_uniform(rng, p.distractors.width) * height))
    xs = rng.uniform(-0.2, 1.2, 2) * width
    ys = rng.uniform(-0.2, 1.2, 2) * height
    box = (min(xs), min(ys), max(xs), max(ys))
    kind = rng.integers(4)
    if kind == 0:
      draw.line((xs[0], ys[0], xs[1], ys[1]), fill=color, width=line_width)
    elif kind == 1:
      draw.rectangle(box, outline=color, width=line_width)
    elif kind == 2:
      draw.ellipse(box, outline=color, width=line_width)
    else:  # A filled block at one side, like the plaque's edge.
      side = rng.uniform(0.05, 0.25) * width
      left = 0 if rng.random() < 0.5 else width - side
      draw.rectangle((left, box[1], left + side, box[3]), fill=color)


@functools.lru_cache(maxsize=8192)
def _glyph(path: str, digit: str, height: int,
           stroke: int) -> tuple[np.ndarray, int, int, int]:
  """A digit's coverage mask drawn with ink `height` px tall, and its ink box.

  Glyphs are drawn at a few power-of-two heights only and scaled by the
  affine warp, so the cache stays small and FreeType runs rarely.

  Returns:
    (mask uint8 [h, w], left, top, right): the box relative to the origin.
  """
  font = _font(path, max(4, round(height / _digit_height_per_em(path))))
  left, top, right, bottom = font.getbbox(digit, stroke_width=stroke)
  image = Image.new("L", (right - left, bottom - top), 0)
  ImageDraw.Draw(image).text((-left, -top), digit, fill=255, font=font,
                             stroke_width=stroke, stroke_fill=255)
  return np.asarray(image), left, top, right


def _text_mask(rng, label: int, font_path: str, canvas: tuple[int, int],
               digit_px: float, p) -> Image.Image:
  """The digit (and its neighbours) as an 'L' coverage mask on the canvas."""
  ref = 2 ** max(4, math.ceil(math.log2(digit_px)))  # Glyph height drawn.
  scale = digit_px / ref
  warp = _warp(rng, scale, p)
  stroke = round(_uniform(rng, p.stroke_width) * ref)
  glyph, left, top, right = _glyph(font_path, DIGITS[label], ref, stroke)
  # Lay the digits out at glyph scale on a strip wide enough to cover the
  # canvas wherever the centre digit lands.
  half_w = math.ceil(sum(canvas) / (scale * max(min(p.aspect), 0.1)))
  strip_w = 2 * half_w + glyph.shape[1]
  strip_h = glyph.shape[0] + ref
  strip = np.zeros((strip_h, strip_w), np.uint8)
  ox = half_w - left  # Origin of the centre digit.
  oy = ref // 2 - top
  placed = [(glyph, ox + left, oy + top)]
  for side in (-1, 1):
    if rng.random() >= p.neighbours.prob:
      continue
    n_glyph, n_left, n_top, n_right = _glyph(
        font_path, DIGITS[rng.integers(10)], ref, stroke)
    gap = round(_uniform(rng, p.neighbours.gap) * ref)
    nx = ox + left - gap - n_right if side < 0 else ox + right + gap - n_left
    placed.append((n_glyph, nx + n_left, oy + n_top))
  for g, x, y in placed:
    _paste_max(strip, g, x, y)
  jx, jy = p.position_jitter
  center = np.array([canvas[0] * (0.5 + _uniform(rng, (-jx, jx))),
                     canvas[1] * (0.5 + _uniform(rng, (-jy, jy)))])
  strip_center = np.array([ox + (left + right) / 2,
                           oy + top + glyph.shape[0] / 2])
  (a, b), (c, d) = warp
  inverse = np.array([[d, -b], [-c, a]]) / (a * d - b * c)
  offset = strip_center - inverse @ center
  coeffs = (inverse[0, 0], inverse[0, 1], offset[0],
            inverse[1, 0], inverse[1, 1], offset[1])
  return Image.fromarray(strip, "L").transform(
      canvas, Image.Transform.AFFINE, coeffs,
      resample=Image.Resampling.BILINEAR)


def _warp(rng, scale: float, p) -> np.ndarray:
  """Linear map from glyph to canvas: scale, stretch, shear, rotate."""
  angle = math.radians(_uniform(rng, (-p.rotation, p.rotation)))
  shear = _uniform(rng, (-p.shear, p.shear))
  aspect = _uniform(rng, p.aspect)
  cos, sin = math.cos(angle), math.sin(angle)
  rotate = np.array([[cos, -sin], [sin, cos]])
  return scale * (rotate @ np.array([[1, shear], [0, 1]]) @
                  np.diag([aspect, 1]))


def _paste_max(canvas: np.ndarray, glyph: np.ndarray, x: int, y: int) -> None:
  """Overlays `glyph` at (x, y), clipped, keeping the larger coverage."""
  h, w = canvas.shape
  x0, y0 = max(x, 0), max(y, 0)
  x1, y1 = min(x + glyph.shape[1], w), min(y + glyph.shape[0], h)
  if x1 > x0 and y1 > y0:
    region = canvas[y0:y1, x0:x1]
    np.maximum(region, glyph[y0 - y:y1 - y, x0 - x:x1 - x], out=region)


def _elastic(rng, mask: np.ndarray, alpha: float) -> np.ndarray:
  """Smooth random displacement of the strokes (`alpha` in mask pixels)."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  h, w = mask.shape
  coarse = rng.uniform(-1, 1, (2, 4, 4)).astype(np.float32)
  fields = [np.asarray(Image.fromarray(f, "F").resize(
      (w, h), Image.Resampling.BICUBIC)) * alpha for f in coarse]
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  return ndimage.map_coordinates(mask, (ys + fields[0], xs + fields[1]),
                                 order=1, mode="constant")


def _fit_and_center(mask: np.ndarray, height: int, width: int,
                    box: int) -> np.ndarray:
  """MNIST's normalisation: ink into a box x box square, mass to the centre."""
  ys, xs = np.nonzero(mask > 0.02)
  if ys.size == 0:
    return np.zeros((height, width), np.float32)
  crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
  scale = box / max(crop.shape)
  size = (max(1, round(crop.shape[1] * scale)),
          max(1, round(crop.shape[0] * scale)))
  small = np.asarray(Image.fromarray(crop, "F").resize(
      size, Image.Resampling.BOX))
  total = small.sum()
  cy = (small.sum(1) @ np.arange(small.shape[0])) / total
  cx = (small.sum(0) @ np.arange(small.shape[1])) / total
  top = int(np.clip(round((height - 1) / 2 - cy), 0, height - small.shape[0]))
  left = int(np.clip(round((width - 1) / 2 - cx), 0, width - small.shape[1]))
  out = np.zeros((height, width), np.float32)
  out[top:top + small.shape[0], left:left + small.shape[1]] = small
  return out


@functools.lru_cache(maxsize=64)
def _shift_matrices(n: int) -> np.ndarray:
  """[5, n, n]: row i of matrix k picks pixel i + k - 2, clamped at edges."""
  index = np.clip(np.arange(n)[None, :] + np.arange(-2, 3)[:, None], 0, n - 1)
  return np.eye(n, dtype=np.float32)[index]


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
  """Separable 5-tap gaussian blur of float [H, W, C], edges replicated.

  As two 2-D matrix products, which beats shifted sums and PIL's filter
  (with its uint8 round trips) on 32x32 images.
  """
  taps = np.exp(-np.arange(-2, 3, dtype=np.float32) ** 2 / (2 * sigma ** 2))
  taps /= taps.sum()
  h, w, c = image.shape
  rows = (taps @ _shift_matrices(h).reshape(5, -1)).reshape(h, h)
  cols = (taps @ _shift_matrices(w).reshape(5, -1)).reshape(w, w)
  blurred = (rows @ image.reshape(h, -1)).reshape(h, w, c)
  blurred = blurred.transpose(0, 2, 1).reshape(-1, w) @ cols.T
  return blurred.reshape(h, c, w).transpose(0, 2, 1)


def _finish(rng, image: np.ndarray, channels: int, p) -> np.ndarray:
  """Colour to channels, then blur, noise and JPEG: the camera's artefacts."""
  if channels == 1:
    image = (image @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
  radius = _uniform(rng, p.blur_radius)
  if radius > 0.05:
    image = _blur(image, radius)
  sigma = _uniform(rng, p.noise_sigma)
  if sigma > 0:
    image = image + sigma * rng.standard_normal(image.shape, np.float32)
  image = np.clip(image, 0, 255).astype(np.uint8)
  if rng.random() < p.jpeg_prob:
    quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    buf = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if channels == 1 else image).save(
        buf, "JPEG", quality=quality)
    image = np.asarray(Image.open(buf, formats=["JPEG"])).reshape(image.shape)
  return image


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """Translates by whole pixels, filling with zeros (no wrap-around)."""
  out = np.zeros_like(image)
  h, w = image.shape[:2]
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)])
  return out


def _render(label: int, rng: np.random.Generator,
            image_shape: tuple[int, int, int], p,
            fonts: Sequence[str]) -> np.ndarray:
  """`render` on prepared params and fonts; all randomness comes from `rng`."""
  height, width, channels = image_shape
  s = p.supersample
  canvas = (width * s, height * s)
  font_path = fonts[rng.integers(len(fonts))]
  bg0, bg1, fg0, fg1 = _colors(rng, p)
  digit_px = _uniform(rng, p.digit_height) * height * s
  mask = _text_mask(rng, label, font_path, canvas, digit_px, p)
  if p.elastic_alpha > 0:
    warped = _elastic(rng, np.asarray(mask, np.float32), p.elastic_alpha * s)
    mask = Image.fromarray(np.clip(warped, 0, 255).astype(np.uint8), "L")
  if p.fit_box:
    small_mask = _fit_and_center(np.asarray(mask, np.float32) * (1 / 255),
                                 height, width,
                                 max(1, round(p.fit_box * min(height, width))))
  else:  # PIL's block mean is the fastest box filter here.
    small_mask = np.asarray(mask.reduce(s), np.float32) * (1 / 255)
  small_mask = np.clip(small_mask, 0, 1)[..., None]

  lo, hi = p.distractors.count
  num_distractors = int(rng.integers(lo, hi + 1)) if hi > 0 else 0
  if num_distractors:
    if bg1 is None:
      big = Image.new("RGB", canvas, tuple(int(v) for v in bg0))
    else:
      big = Image.fromarray(_gradient(
          rng, canvas[1], canvas[0], bg0, bg1).astype(np.uint8), "RGB")
    _draw_distractors(rng, ImageDraw.Draw(big), canvas, num_distractors, p)
    bg = np.asarray(big.reduce(s), np.float32)
  else:
    bg = _gradient(rng, height, width, bg0, bg1)
  if rng.random() < p.colors.shadow_prob:
    dy, dx = rng.choice((-2, -1, 1, 2), 2)
    shadow = _shift(small_mask, int(dy), int(dx))
    shade = np.clip(0.4 * bg0 + 0.6 * (255 - fg0), 0, 255)
    bg = bg * (1 - shadow) + shade * shadow
  fg = _gradient(rng, height, width, fg0, fg1)
  image = bg * (1 - small_mask) + fg * small_mask
  return _finish(rng, image, channels, p)


def render(label: int, rng: np.random.Generator,
           image_shape: Sequence[int],
           config: ml_collections.ConfigDict) -> np.ndarray:
  """Renders one image of digit `label`: uint8 [H, W, C], C in {1, 3}."""
  image_shape = _check_shape(image_shape)
  if not 0 <= label < len(DIGITS):
    raise ValueError(f"label {label} is not a digit 0..9")
  return _render(label, rng, image_shape, _params(config), find_fonts(config))


def _check_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
  shape = tuple(int(v) for v in image_shape)
  if len(shape) != 3 or shape[2] not in (1, 3) or min(shape[:2]) < 8:
    raise ValueError(f"image_shape must be (H, W, 1 or 3) with H, W >= 8, "
                     f"got {image_shape}")
  return shape


def _render_range(start: int, stop: int, num_classes: int, seed: int,
                  image_shape: tuple[int, int, int],
                  config_dict: dict) -> np.ndarray:
  """Images start..stop-1; the worker processes' unit of work."""
  config = ml_collections.ConfigDict(config_dict)
  p, fonts = _params(config), find_fonts(config)
  out = np.empty((stop - start,) + image_shape, np.uint8)
  for i in range(start, stop):
    rng = np.random.default_rng([seed, i])
    out[i - start] = _render(i % num_classes, rng, image_shape, p, fonts)
  return out


def render_dataset(num_per_class: int, image_shape: Sequence[int],
                   config: ml_collections.ConfigDict, seed: int,
                   num_workers: int = 0,
                   num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """Renders ``num_per_class * num_classes`` images, labels interleaved.

  Image ``i`` has label ``i % num_classes`` and depends only on (seed, i), so
  the result is the same for any `num_workers` (0: one per CPU).

  Returns:
    (images uint8 [N, H, W, C], labels int32 [N]).
  """
  image_shape = _check_shape(image_shape)
  if not 1 <= num_classes <= len(DIGITS):
    raise ValueError(f"num_classes must be in 1..10, got {num_classes}")
  find_fonts(config)  # Fail here, not in a worker.
  total = num_per_class * num_classes
  labels = (np.arange(total) % num_classes).astype(np.int32)
  workers = num_workers or os.cpu_count() or 1
  render_range = functools.partial(
      _render_range, num_classes=num_classes, seed=seed,
      image_shape=image_shape, config_dict=config.to_dict())
  if workers == 1 or total <= _CHUNK_SIZE:
    return render_range(0, total), labels
  starts = range(0, total, _CHUNK_SIZE)
  stops = [min(start + _CHUNK_SIZE, total) for start in starts]
  bar = progress.bar(total, "procedural", unit="img")
  chunks = []
  # Spawn, not fork: the parent may hold TensorFlow or JAX threads.
  with concurrent.futures.ProcessPoolExecutor(
      min(workers, len(starts)),
      mp_context=multiprocessing.get_context("spawn")) as pool:
    for chunk in pool.map(render_range, starts, stops):
      chunks.append(chunk)
      bar.update(len(chunk))
  bar.close()
  return np.concatenate(chunks), labels


def write_procedural_dataset(root_dir: str, name: str, num_per_class: int,
                             image_shape: Sequence[int],
                             config: ml_collections.ConfigDict, seed: int,
                             num_workers: int = 0,
                             num_classes: int = 10) -> str:
  """Renders a "train" split and writes it as a tfds data set; returns its dir.

  The classifier stage then reads it like the real data
  (`image_datasets.load_written`).
  """
  # Imported here so worker processes, which import this module, skip TF.
  from gansynth.data import image_datasets  # pylint: disable=g-import-not-at-top
  images, labels = render_dataset(num_per_class, image_shape, config, seed,
                                  num_workers, num_classes)
  description = (f"Procedural digits, preset {config.preset}, seed {seed}, "
                 f"{num_per_class} per class.")
  return image_datasets.write_image_dataset(
      root_dir, name, {"train": (images, labels)}, num_classes,
      description=description)
