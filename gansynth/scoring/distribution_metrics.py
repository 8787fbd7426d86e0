"""Distances between two sets of feature vectors: Fréchet, precision/recall.

Both work on any feature space. The evaluation stage uses the penultimate
layer of the classifier trained on real data, not Inception: the numbers
compare sources within this project and are not comparable to published FIDs.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def sqrt_psd(m: np.ndarray) -> np.ndarray:
  """Square root of a symmetric positive semi-definite matrix."""
  w, v = scipy.linalg.eigh(m)
  return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to x [N, D] and y [M, D].

  ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)), the formula of FID
  (Heusel et al. 2017). Tr (S_x S_y)^(1/2) is computed as the trace of the
  PSD root of S_x^(1/2) S_y S_x^(1/2) (same eigenvalues), which stays exact
  when the covariances are singular, as ReLU features with dead units and
  sets smaller than the dimension make them. Small sets give a biased (too
  large) value, so compare distances computed from sets of the same size.
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  mu_x, mu_y = x.mean(0), y.mean(0)
  s_x = np.atleast_2d(np.cov(x, rowvar=False))
  s_y = np.atleast_2d(np.cov(y, rowvar=False))
  root_x = sqrt_psd(s_x)
  eig = scipy.linalg.eigvalsh(root_x @ s_y @ root_x)
  value = (np.sum((mu_x - mu_y) ** 2) + np.trace(s_x) + np.trace(s_y) -
           2 * np.sum(np.sqrt(np.maximum(eig, 0.0))))
  return float(max(value, 0.0))


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Euclidean distances [len(a), len(b)], without a [N, M, D] temporary."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  sq = (np.sum(a ** 2, 1)[:, None] + np.sum(b ** 2, 1)[None, :] -
        2 * a @ b.T)
  return np.sqrt(np.maximum(sq, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
  """Distance from each point of x to its k-th nearest other point of x."""
  d = pairwise_distances(x, x)
  np.fill_diagonal(d, np.inf)
  return np.partition(d, k - 1, axis=1)[:, k - 1]


def coverage_fraction(points: np.ndarray, centres: np.ndarray,
                      radii: np.ndarray) -> float:
  """Fraction of points inside at least one ball (centre, radius)."""
  inside = pairwise_distances(points, centres) <= radii[None, :]
  return float(inside.any(1).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray,
                     k: int = 3) -> dict[str, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019).

  Each set's manifold is the union of balls around its points reaching their
  k-th nearest neighbour. Precision: share of fake points on the real
  manifold (are generated images realistic?). Recall: share of real points
  on the fake manifold (do generated images cover the real variety?).
  """
  return {"precision": coverage_fraction(fake, real, knn_radii(real, k)),
          "recall": coverage_fraction(real, fake, knn_radii(fake, k))}


def compare(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
  """Fréchet distance plus precision/recall of `fake` against `real`."""
  return {"frechet": frechet_distance(real, fake),
          **precision_recall(real, fake, k)}
