"""gansynth: class GANs in JAX/Flax, synthetic data sets, accuracy scores.

The Python API (gansynth/api.py), imported on first use so that
`python -m gansynth.main --help` does not load JAX or TensorFlow:

  run = gansynth.run("quickstart", "/tmp/qs")  # or train/synthesize/classify
  run = gansynth.load("/tmp/qs")
  images = run.sample(3, n=16, seed=0)          # uint8 [16, H, W, C]
"""

_API = ("load", "run", "train", "synthesize", "classify", "evaluate",
        "read_config", "Run")


def __getattr__(name):
  if name in _API:
    from gansynth import api  # pylint: disable=g-import-not-at-top
    return getattr(api, name)
  raise AttributeError(f"module 'gansynth' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_API))
