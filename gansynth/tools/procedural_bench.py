"""Times the procedural renderer (and optionally the tfds write).

  python -m gansynth.tools.procedural_bench --num 73000 --workers 2 --shape 32,32,3

73,000 is the size of SVHN's train split; the target is under a minute on a
2-core CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time

from gansynth import config_schema
from gansynth.runtime import image_grid
from gansynth.sim import procedural


def _parse_shape(text: str) -> tuple[int, int, int]:
  shape = tuple(int(v) for v in text.split(","))
  if len(shape) != 3:
    raise argparse.ArgumentTypeError(f"--shape wants H,W,C, got {text!r}")
  return shape


def _cpu_seconds() -> float:
  """CPU time of this process and its finished worker processes."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num", type=int, default=73000,
                      help="images to render (rounded up to whole classes)")
  parser.add_argument("--workers", type=int, default=0,
                      help="worker processes (0: one per CPU)")
  parser.add_argument("--shape", type=_parse_shape, default=None,
                      help="H,W,C (default: the preset's)")
  parser.add_argument("--preset", default="svhn", choices=("svhn", "mnist"))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--write", metavar="DIR", default=None,
                      help="also write the images as a tfds data set here")
  parser.add_argument("--grid", metavar="PNG", default=None,
                      help="also save a sample grid")
  args = parser.parse_args(argv)

  config = config_schema.render_config(args.preset)
  shape = args.shape or tuple(config.image_shape)
  num_classes = 10
  per_class = math.ceil(args.num / num_classes)
  workers = args.workers or os.cpu_count()

  start, cpu_start = time.perf_counter(), _cpu_seconds()
  images, labels = procedural.render_dataset(
      per_class, shape, config, args.seed, args.workers, num_classes)
  seconds = time.perf_counter() - start
  cpu = _cpu_seconds() - cpu_start
  print(f"render: {len(images)} images {shape} with {workers} workers in "
        f"{seconds:.1f} s = {len(images) / seconds:.0f} images/s")
  # Wall time suffers when other jobs share the CPUs; CPU time does not.
  print(f"render CPU time: {cpu:.1f} s = {1e3 * cpu / len(images):.2f} ms per "
        f"image, so {workers * len(images) / cpu:.0f} images/s on "
        f"{workers} idle cores")

  if args.grid:
    image_grid.save_grid(args.grid, image_grid.per_class_grid(
        images, labels, num_classes, 10))
  if args.write:
    # Imported here so that timing the renderer alone does not load TF.
    from gansynth.data import image_datasets  # pylint: disable=g-import-not-at-top
    os.makedirs(args.write, exist_ok=True)
    name = f"procedural_{args.preset}_bench"
    start = time.perf_counter()
    directory = image_datasets.write_image_dataset(
        tempfile.mkdtemp(dir=args.write), name,
        {"train": (images, labels)}, num_classes)
    seconds = time.perf_counter() - start
    print(f"write: {len(images)} images to {directory} in {seconds:.1f} s = "
          f"{len(images) / seconds:.0f} images/s")


if __name__ == "__main__":
  main()
