"""The results table: results.json (every number) and results.md (readable)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from gansynth import paths


def write(workdir: str, results: Mapping[str, Any]) -> tuple[str, str]:
  json_path = paths.results_json(workdir)
  with open(json_path, "w") as f:
    json.dump(results, f, indent=2)
  md_path = paths.results_md(workdir)
  with open(md_path, "w") as f:
    f.write(markdown(results))
  return json_path, md_path


def markdown(results: Mapping[str, Any]) -> str:
  """Accuracy per source, then per-class accuracy, as GitHub tables."""
  sources = results["sources"]
  lines = [
      f"# Results: {results['dataset']}",
      "",
      f"Classifier trained on each source with identical settings, tested on "
      f"{results['num_test_images']} real images "
      f"(`{results['dataset']}[{results['test_split']}]`).",
      "",
      "| source | training images | test accuracy |",
      "| --- | ---: | ---: |",
  ]
  for name, r in sources.items():
    lines.append(f"| {name} | {r['num_train_images']:,} | "
                 f"{100 * r['accuracy']:.1f}% |")
  num_classes = len(next(iter(sources.values()))["per_class_accuracy"])
  lines += ["", "Per-class test accuracy (%):", "",
            "| source | " + " | ".join(str(k) for k in range(num_classes)) +
            " |", "| --- |" + " ---: |" * num_classes]
  for name, r in sources.items():
    lines.append(f"| {name} | " + " | ".join(
        f"{100 * a:.0f}" for a in r["per_class_accuracy"]) + " |")
  return "\n".join(lines) + "\n"
