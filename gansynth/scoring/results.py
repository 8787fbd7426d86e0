"""The results table: results.json (every number) and results.md (readable).

Both are the classify stage's Classification Accuracy Score (one classifier
seed, `evaluation.classify`); `class_table` is the per-class table shared by
results.md, report.md and ablation.md.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from gansynth import paths


def summary(config, num_test_images: int,
            cas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """results.json from `evaluation.cas` scored with one seed."""
  sources = {}
  for name, r in cas.items():
    sources[name] = {
        "accuracy": r["accuracies"][0],
        "per_class_accuracy": r["per_class_accuracy_mean"],
        "confusion": r["confusion"],
        "num_train_images": r["num_train_images"],
        "train_images_per_class": r["train_images_per_class"],
        "seconds": r["seconds"]}
  return {"dataset": config.data.name, "test_split": config.data.test_split,
          "num_test_images": int(num_test_images), "seed": config.seed,
          "classifier": config.classifier.to_dict(), "sources": sources}


def write(workdir: str, results: Mapping[str, Any]) -> tuple[str, str]:
  json_path = paths.results_json(workdir)
  with open(json_path, "w") as f:
    json.dump(results, f, indent=2)
  md_path = paths.results_md(workdir)
  with open(md_path, "w") as f:
    f.write(markdown(results))
  return json_path, md_path


def class_table(first: str, rows: Mapping[str, Sequence[float]],
                cell: Callable[[float], str]) -> list[str]:
  """A GitHub table with a column per class: `first` names the rows."""
  k = len(next(iter(rows.values())))
  lines = ["| " + first + " | " + " | ".join(map(str, range(k))) + " |",
           "| --- |" + " ---: |" * k]
  for name, values in rows.items():
    lines.append(f"| {name} | " + " | ".join(map(cell, values)) + " |")
  return lines


def percent(a: float) -> str:
  return f"{100 * a:.0f}"


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
  lines += ["", "Per-class test accuracy (%):", ""]
  lines += class_table("source", {n: r["per_class_accuracy"]
                                  for n, r in sources.items()}, percent)
  return "\n".join(lines) + "\n"
