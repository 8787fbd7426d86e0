"""Scoring the sources: the CAS, distribution metrics, results files, plots, the ablation."""
