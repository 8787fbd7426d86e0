"""Metrics to TensorBoard (clu.metric_writers) and to a plain JSONL file."""

from __future__ import annotations

import json
import os
from typing import Mapping

from clu import metric_writers
import jax
import numpy as np


class MetricsLog:
  """Writes scalars to TensorBoard under `workdir` and lines to `jsonl_name`.

  Per-GAN metrics (arrays of shape [K]) become `name/gan{k}` scalars plus
  their mean; the JSONL line keeps the whole list. A resumed run appends, so
  a reader should keep the last line for each step.
  """

  def __init__(self, workdir: str, jsonl_name: str):
    os.makedirs(workdir, exist_ok=True)
    self.writer = metric_writers.create_default_writer(
        workdir, just_logging=jax.process_index() > 0, asynchronous=False)
    self.path = os.path.join(workdir, jsonl_name)

  def write(self, step: int, metrics: Mapping[str, np.ndarray]) -> None:
    scalars, line = {}, {"step": int(step)}
    for name, value in metrics.items():
      value = np.asarray(value, np.float64)
      line[name] = value.tolist()
      scalars[name] = float(value.mean())
      if value.ndim == 1 and value.size > 1:
        for k, v in enumerate(value):
          scalars[f"{name}/gan{k}"] = float(v)
    self.writer.write_scalars(int(step), scalars)
    with open(self.path, "a") as f:
      f.write(json.dumps(line) + "\n")

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self.writer.write_images(int(step), dict(images))

  def close(self) -> None:
    self.writer.flush()
    self.writer.close()


def read_jsonl(path: str) -> list[dict]:
  """The lines of a metrics file, the last one for each step, in step order."""
  by_step = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        row = json.loads(line)
        by_step[row["step"]] = row
  return [by_step[s] for s in sorted(by_step)]
