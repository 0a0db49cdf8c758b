"""Mode-coverage metrics: 2-D toy mixtures, MNIST-like digits and Stacked MNIST.

Toy protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018): a sample is
*high quality* (HQ) if it lies within ``n_std`` (3) standard deviations of its nearest mode; a mode
is *captured* if it is the nearest mode of at least one HQ sample; the reverse KL is
``KL(p || uniform)`` with ``p`` the histogram of nearest modes over the HQ samples (natural log).
Ring of 8 (radius 1, std 0.01) and grid of 25 (std 0.05) with 2,500 samples are the papers' setups.

Digit data: a digit classifier labels each sample (each channel for Stacked MNIST, giving
``100 * l0 + 10 * l1 + l2``, 1,000 modes; Metz et al. 2017, VEEGAN, PacGAN use 26,000 samples);
a mode is captured if at least one sample gets it and the KL is ``KL(p || uniform)`` over the label
histogram. The *confident share* is the share of samples the classifier gives one digit with
probability >= 0.9.

KL conventions: ``0 log 0 = 0``, so modes without samples add nothing; the value lies in
``[0, log K]``. With no sample to histogram (no HQ sample at all) the KL is undefined; the functions
then return ``log K``, the worst value a histogram can reach (all mass on one mode), so that an
all-garbage generator never scores better than a collapsed one, and never NaN.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from jaxgan.metrics._common import as_nhwc


class LabelPredictor(Protocol):
    """Anything with ``predict(images (N, H, W, 1) float in [-1, 1]) -> (N,) int labels``."""

    def predict(self, images: Any) -> np.ndarray: ...


def kl_to_uniform(counts: np.ndarray) -> float:
    """``KL(p || uniform)`` in nats for a histogram of counts over K bins (log K if empty)."""
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.size
    total = counts.sum()
    if total <= 0:
        return float(np.log(k))
    p = counts[counts > 0] / total
    return float(max(np.sum(p * np.log(p * k)), 0.0))


def nearest_modes(samples: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest centre. samples (N, D), centers (K, D)."""
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"nearest_modes: shapes {samples.shape} and {centers.shape} do not match")
    idx = np.empty(len(samples), np.int64)
    dist = np.empty(len(samples), np.float64)
    for start in range(0, len(samples), 65536):  # bounded (chunk, K) distance matrices
        d2 = np.sum((samples[start : start + 65536, None, :] - centers[None]) ** 2, axis=-1)
        idx[start : start + len(d2)] = np.argmin(d2, axis=1)
        dist[start : start + len(d2)] = np.sqrt(np.min(d2, axis=1))
    return idx, dist


def toy_mode_metrics(
    samples: np.ndarray, centers: np.ndarray, std: float, n_std: float = 3.0
) -> dict[str, Any]:
    """VEEGAN/PacGAN toy metrics.

    samples: (N, 2) generated points; centers: (K, 2) mode centres; std: the modes' standard
    deviation. Returns ``modes_captured`` (int), ``num_modes`` (K), ``high_quality_fraction``
    (0..1), ``reverse_kl`` (nats; log K when no sample is HQ), plus ``num_samples`` and
    ``num_high_quality``.
    """
    centers = np.asarray(centers)
    idx, dist = nearest_modes(samples, centers)
    hq = dist <= n_std * std
    counts = np.bincount(idx[hq], minlength=len(centers))
    return {
        "modes_captured": int(np.count_nonzero(counts)),
        "num_modes": len(centers),
        "high_quality_fraction": float(hq.mean()) if len(hq) else 0.0,
        "reverse_kl": kl_to_uniform(counts),
        "num_samples": len(idx),
        "num_high_quality": int(hq.sum()),
    }


def label_mode_metrics(labels: np.ndarray, num_modes: int) -> dict[str, Any]:
    """Modes captured and ``KL(label histogram || uniform)`` for labels in [0, num_modes)."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_modes):
        raise ValueError(f"labels must lie in [0, {num_modes})")
    counts = np.bincount(labels, minlength=num_modes)
    return {
        "modes_captured": int(np.count_nonzero(counts)),
        "num_modes": int(num_modes),
        "reverse_kl": kl_to_uniform(counts),
        "num_samples": int(labels.size),
    }


def digit_mode_metrics(images: Any, classifier: LabelPredictor) -> dict[str, Any]:
    """Mode metrics of MNIST-like samples (10 modes).

    images: (N, H, W) or (N, H, W, 1) float in [-1, 1] (28x28 or 32x32 for the built-in
    classifier). Returns ``modes_captured``, ``num_modes`` (10), ``reverse_kl`` (nats, KL of the
    predicted-label histogram to uniform), ``num_samples``.
    """
    images = as_nhwc(images)
    if images.shape[-1] != 1:
        raise ValueError(f"digit_mode_metrics: expected one channel, got {images.shape}")
    return label_mode_metrics(np.asarray(classifier.predict(images)), 10)


def confident_share(logits: np.ndarray, threshold: float = 0.9) -> float:
    """Share of samples whose most likely class has softmax probability >= ``threshold``.

    logits: (N, K) classifier logits. A digit sample counts as "nameable" when the classifier is
    this sure of one digit; compare with the same share on real digits (about 0.96 on mnist5k).
    Inputs far from any digit (uniform noise) can still score high: read it with FID or SWD.
    """
    z = np.asarray(logits, np.float64)
    if z.size == 0:
        return 0.0
    z = z - z.max(axis=1, keepdims=True)
    p_max = 1.0 / np.exp(z).sum(axis=1)  # the largest probability: exp(0) / sum
    return float(np.mean(p_max >= threshold))


def stacked_mnist_modes(images_rgb: Any, classifier: LabelPredictor) -> np.ndarray:
    """Mode index ``100 * l0 + 10 * l1 + l2`` of each (N, H, W, 3) image, one digit per channel."""
    images_rgb = as_nhwc(images_rgb)
    if images_rgb.shape[-1] != 3:
        raise ValueError(f"stacked MNIST images need 3 channels, got {images_rgb.shape}")
    labels = [np.asarray(classifier.predict(images_rgb[..., c : c + 1])) for c in range(3)]
    return 100 * labels[0] + 10 * labels[1] + labels[2]


def stacked_mnist_mode_metrics(images_rgb: Any, classifier: LabelPredictor) -> dict[str, Any]:
    """Mode metrics of Stacked MNIST samples (1,000 modes).

    images_rgb: (N, H, W, 3) float in [-1, 1]; each channel is classified as a digit. Returns
    ``modes_captured``, ``num_modes`` (1000), ``reverse_kl`` (nats), ``num_samples``.
    """
    return label_mode_metrics(stacked_mnist_modes(images_rgb, classifier), 1000)
