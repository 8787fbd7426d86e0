"""tfds builders that ship with gansynth (importing registers them)."""

from gansynth.data.datasets import sklearn_digits  # noqa: F401

LOCAL = ("sklearn_digits",)  # prepared from files that ship with packages
