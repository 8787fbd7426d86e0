"""Benchmarks that print numbers: `python -m gansynth.tools.bench`."""
