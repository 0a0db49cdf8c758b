"""Mode metrics on hand-built samples with known coverage."""

from __future__ import annotations

import numpy as np
import pytest

from jaxgan.metrics.modes import (
    digit_mode_metrics,
    kl_to_uniform,
    stacked_mnist_mode_metrics,
    toy_mode_metrics,
)


def ring(k: int = 8, radius: float = 1.0) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_ring_six_of_eight_modes() -> None:
    centers, std = ring(), 0.01
    counts = [500, 400, 400, 300, 300, 100, 0, 0]  # 2,000 high-quality samples on 6 modes
    rng = np.random.default_rng(0)
    parts = []
    for c, n in zip(centers, counts, strict=True):
        direction = rng.normal(size=(n, 2))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        parts.append(c + direction * rng.uniform(0, 2.9 * std, (n, 1)))  # inside 3 std
    # 500 low-quality samples: between modes 6 and 7 (nearest is one of them, but > 3 std away),
    # and at the origin.
    between = 0.5 * (centers[6] + centers[7])
    parts += [np.repeat(between[None], 250, 0), np.zeros((250, 2))]
    samples = np.concatenate(parts)
    result = toy_mode_metrics(samples, centers, std)
    p = np.array(counts[:6]) / 2000
    assert result["modes_captured"] == 6
    assert result["num_modes"] == 8
    assert result["high_quality_fraction"] == pytest.approx(2000 / 2500)
    assert result["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(8 * p))), rel=1e-12)
    assert result["num_high_quality"] == 2000 and result["num_samples"] == 2500


def test_grid_uniform_and_boundaries() -> None:
    centers = np.stack(np.meshgrid([-4, -2, 0, 2, 4], [-4, -2, 0, 2, 4]), -1).reshape(-1, 2)
    samples = np.repeat(centers, 100, axis=0) + 0.01
    result = toy_mode_metrics(samples, centers, 0.05)
    assert result["modes_captured"] == 25
    assert result["high_quality_fraction"] == 1.0
    assert result["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    # n_std scales the high-quality radius: 0.3 away is inside 10 std, outside 3 std.
    far = centers[:1] + np.array([[0.3, 0.0]])
    assert toy_mode_metrics(far, centers, 0.05)["modes_captured"] == 0
    assert toy_mode_metrics(far, centers, 0.05, n_std=10.0)["modes_captured"] == 1


def test_no_high_quality_sample_gives_log_k_not_nan() -> None:
    result = toy_mode_metrics(np.full((50, 2), 10.0), ring(), 0.01)
    assert result["modes_captured"] == 0 and result["high_quality_fraction"] == 0.0
    assert result["reverse_kl"] == pytest.approx(np.log(8))
    assert kl_to_uniform(np.array([5, 0, 0, 0])) == pytest.approx(np.log(4))


class _PixelCodedClassifier:
    """Stub classifier: label l is encoded as the constant pixel value l / 10 - 0.5."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        assert images.ndim == 4 and images.shape[-1] == 1
        return np.rint((images[:, 0, 0, 0] + 0.5) * 10).astype(np.int32)


def _coded(labels: np.ndarray) -> np.ndarray:
    return np.broadcast_to((labels / 10 - 0.5)[:, None, None], (len(labels), 28, 28)).copy()


def test_digit_mode_metrics_with_known_labels() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    result = digit_mode_metrics(_coded(labels)[..., None], _PixelCodedClassifier())
    p = np.array([0.5, 0.3, 0.2])
    assert result["modes_captured"] == 3 and result["num_modes"] == 10
    assert result["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(10 * p))))
    uniform = digit_mode_metrics(_coded(np.arange(100) % 10), _PixelCodedClassifier())
    assert uniform["modes_captured"] == 10 and uniform["reverse_kl"] == pytest.approx(0.0)


def test_stacked_mnist_mode_metrics_with_known_labels() -> None:
    digits = np.array([[1, 2, 3], [1, 2, 3], [9, 0, 0], [4, 4, 4]])
    images = np.stack([_coded(digits[:, c]) for c in range(3)], axis=-1)
    result = stacked_mnist_mode_metrics(images, _PixelCodedClassifier())
    assert result["modes_captured"] == 3 and result["num_modes"] == 1000
    p = np.array([0.5, 0.25, 0.25])
    assert result["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(1000 * p))))
