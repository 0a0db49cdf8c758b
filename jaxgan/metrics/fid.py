"""Feature-based metrics: FID, KID and precision/recall, for any feature extractor.

- FID (Heusel et al. 2017): ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between Gaussians
  fitted to two feature sets (float64, unbiased covariances as numpy's ``np.cov``). The trace of the
  matrix square root is computed stably as ``sum(sqrt(eig(A S2 A)))`` with ``A = S1^(1/2)``: the
  product ``A S2 A`` is symmetric positive semi-definite and has the same eigenvalues as ``S1 S2``,
  so only symmetric eigendecompositions are needed (no complex parts, no ``sqrtm`` iterations, and
  singular covariances, e.g. fewer samples than dimensions, are fine).
- KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel ``k(x, y) = (x.y / d + 1)^3``,
  averaged over ``num_subsets`` (100) random subsets of ``subset_size`` (1000, or fewer when a set
  is smaller) samples per set, drawn without replacement; mean and standard deviation.
- Precision and recall (Kynkaenniemi et al. 2019): each real feature gets a ball reaching its
  k-th (k = 3) nearest real neighbour; precision is the fraction of generated features inside at
  least one real ball; recall swaps the roles (real features inside generated balls).

Feature extractors (see :class:`FeatureExtractor`): the digit classifier's 128-d penultimate
features (:func:`jaxgan.metrics.classifier.load_digit_classifier`, offline) and the FID InceptionV3
pool3 features (:class:`jaxgan.metrics.inception.InceptionFeatureExtractor`, weights from a file
the user supplies). FIDs from different extractors are not comparable with each other.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps images to feature vectors.

    ``features(images)``: (N, H, W, C) float images in [-1, 1] -> float (N, F) numpy array.
    ``name``: a short identifier recorded next to the metric values (e.g. "digits", "inception").
    """

    name: str

    def features(self, images: Any) -> np.ndarray: ...


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F), float64, of features (N, F), N >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"feature_statistics: need (N >= 2, F) features, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
    sym = 0.5 * (sigma + sigma.T)
    w, v = np.linalg.eigh(sym)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^(1/2))`` for symmetric PSD S1, S2, via ``eig(S1^(1/2) S2 S1^(1/2))``."""
    a = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    m = a @ np.asarray(sigma2, dtype=np.float64) @ a
    w = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64, >= 0 up to rounding)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("frechet_distance: statistics of different dimensions")
    diff = mu1 - mu2
    tr = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + tr)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N_a, F) and (N_b, F)."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel; x (m, F), y (n, F), m, n >= 2."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Kernel Inception Distance: ``{"mean": ..., "std": ...}`` of the per-subset unbiased MMD^2.

    features_a (N_a, F), features_b (N_b, F). Each subset draws ``min(subset_size, N_a, N_b)``
    samples without replacement from each set. Values can be slightly negative (unbiased).
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"kid: feature dimensions differ, {a.shape} vs {b.shape}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("kid: need at least 2 samples per set")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(
                a[rng.choice(len(a), size, replace=False)],
                b[rng.choice(len(b), size, replace=False)],
            )
            for _ in range(num_subsets)
        ]
    )
    return {"mean": float(values.mean()), "std": float(values.std())}


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (len(x), len(y)), clipped at 0, float64."""
    d = np.sum(x * x, axis=1)[:, None] - 2.0 * (x @ y.T) + np.sum(y * y, axis=1)[None, :]
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int = 3, batch_size: int = 1024) -> np.ndarray:
    """Squared distance of each row to its k-th nearest other row (self excluded). (N,)"""
    x = np.asarray(features, dtype=np.float64)
    if len(x) <= k:
        raise ValueError(f"knn_radii: need more than k = {k} samples, got {len(x)}")
    radii = np.empty(len(x))
    for start in range(0, len(x), batch_size):
        d = _squared_distances(x[start : start + batch_size], x)
        # Column 0 of the partition is the point itself (distance 0), so index k is the k-th other.
        radii[start : start + len(d)] = np.partition(d, k, axis=1)[:, k]
    return radii


def _coverage(
    queries: np.ndarray, support: np.ndarray, radii: np.ndarray, batch_size: int
) -> float:
    """Fraction of queries within radii[j] of at least one support point j."""
    inside = 0
    for start in range(0, len(queries), batch_size):
        d = _squared_distances(queries[start : start + batch_size], support)
        inside += int(np.count_nonzero(np.any(d <= radii[None, :], axis=1)))
    return inside / len(queries)


def precision_recall(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    *,
    k: int = 3,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019) with k-NN balls.

    real_features (N_r, F), fake_features (N_f, F). Returns ``{"precision", "recall"}`` in [0, 1].
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    precision = _coverage(fake, real, knn_radii(real, k, batch_size), batch_size)
    recall = _coverage(real, fake, knn_radii(fake, k, batch_size), batch_size)
    return {"precision": precision, "recall": recall}


def extract_features(extractor: FeatureExtractor, images: Any, batch_size: int = 500) -> np.ndarray:
    """Run ``extractor.features`` over (N, H, W, C) images in chunks; returns (N, F) float32."""
    out = [
        np.asarray(extractor.features(images[start : start + batch_size]), dtype=np.float32)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(out, axis=0)
