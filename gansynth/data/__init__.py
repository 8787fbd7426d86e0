"""Data: tfds splits to per-class arrays, offline import, labelled synthetic sources."""
