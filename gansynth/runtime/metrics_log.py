"""Metrics to TensorBoard (clu.metric_writers) and to a plain JSONL file."""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

from clu import metric_writers
import jax
import numpy as np


def writer(logdir: str) -> metric_writers.MetricWriter:
  """A TensorBoard writer for `logdir` (process 0; a no-op elsewhere).

  Nothing goes to the log: the training loop prints one summary line per
  log step itself, and the values are in TensorBoard and the JSONL file.
  """
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return metric_writers.SummaryWriter(logdir)


def tag(name: str) -> str:
  """A class name as a TensorBoard tag part ("T-shirt/top" -> "T-shirt-top")."""
  return str(name).replace("/", "-").strip() or "_"


class MetricsLog:
  """Writes scalars to TensorBoard under `workdir` and lines to `jsonl_name`.

  Per-GAN metrics (arrays of shape [K]) become `name/<class name>` scalars
  (`names`, default "0".."K-1") plus their mean; the JSONL line keeps the
  whole list. A resumed run appends, so a reader should keep the last line
  for each step.
  """

  def __init__(self, workdir: str, jsonl_name: str,
               names: Sequence[str] | None = None):
    os.makedirs(workdir, exist_ok=True)
    self.writer = writer(workdir)
    self.path = os.path.join(workdir, jsonl_name)
    self.names = list(names) if names is not None else None

  def write(self, step: int, metrics: Mapping[str, np.ndarray]) -> None:
    scalars, line = {}, {"step": int(step)}
    for name, value in metrics.items():
      value = np.asarray(value, np.float64)
      line[name] = value.tolist()
      scalars[name] = float(value.mean())
      if value.ndim == 1 and value.size > 1:
        for k, v in enumerate(value):
          label = self.names[k] if self.names else str(k)
          scalars[f"{name}/{tag(label)}"] = float(v)
    self.writer.write_scalars(int(step), scalars)
    with open(self.path, "a") as f:
      f.write(json.dumps(line) + "\n")

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self.writer.write_images(int(step), dict(images))

  def close(self) -> None:
    self.writer.flush()
    self.writer.close()


def hparams(config) -> dict[str, bool | int | float | str]:
  """The config as flat TensorBoard hparams ("gan.learning_rate": 2e-4)."""
  flat = {}

  def walk(node, prefix):
    for key, value in node.items():
      if hasattr(value, "items"):
        walk(value, f"{prefix}{key}.")
      elif isinstance(value, (bool, int, float, str)):
        flat[prefix + key] = value
      else:
        flat[prefix + key] = str(value)
  walk(config, "")
  return flat


def write_hparams(workdir: str, config) -> None:
  """The run's config in TensorBoard's HParams tab, to compare runs."""
  w = writer(workdir)
  w.write_hparams(hparams(config))
  w.close()


def write_cas(workdir: str, results: Mapping, step: int) -> None:
  """Each source's real test accuracy (CAS) as a scalar `cas/<source>`."""
  w = writer(workdir)
  w.write_scalars(int(step), {
      f"cas/{tag(source)}": float(r["accuracy"])
      for source, r in results["sources"].items()})
  w.close()


def read_jsonl(path: str) -> list[dict]:
  """The lines of a metrics file, the last one for each step, in step order."""
  by_step = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        row = json.loads(line)
        by_step[row["step"]] = row
  return [by_step[s] for s in sorted(by_step)]
