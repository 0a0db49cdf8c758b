"""MS-SSIM: official reference (scipy fftconvolve), identity, independent noise, diversity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from scipy import signal

from jaxgan.metrics.ms_ssim import gaussian_window_1d, ms_ssim, ms_ssim_diversity, random_pairs

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def _gauss2d(size: int, sigma: float) -> np.ndarray:
    radius = size // 2
    offset, start, stop = 0.0, -radius, radius + 1
    if size % 2 == 0:
        offset, stop = 0.5, stop - 1
    x, y = np.mgrid[offset + start : stop, offset + start : stop]
    g = np.exp(-((x**2 + y**2) / (2.0 * sigma**2)))
    return g / g.sum()


def _reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent float64 implementation of the official multi-scale SSIM, per pair."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssims, css = [], []
    for _ in range(5):
        size = min(11, a.shape[1], a.shape[2])
        win = _gauss2d(size, size * 1.5 / 11)[None, :, :, None]
        f = lambda v, win=win: signal.fftconvolve(v, win, mode="valid")
        mu_a, mu_b = f(a), f(b)
        s_aa, s_bb, s_ab = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
        v1, v2 = 2 * s_ab + c2, s_aa + s_bb + c2
        ssims.append(
            np.mean((2 * mu_a * mu_b + c1) * v1 / ((mu_a**2 + mu_b**2 + c1) * v2), (1, 2, 3))
        )
        css.append(np.mean(v1 / v2, axis=(1, 2, 3)))
        a = (a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]) / 4
        b = (b[:, 0::2, 0::2] + b[:, 1::2, 0::2] + b[:, 0::2, 1::2] + b[:, 1::2, 1::2]) / 4
    ssim = np.clip(np.array(ssims), 0, None)
    cs = np.clip(np.array(css), 0, None)
    return np.prod(cs[:-1] ** WEIGHTS[:-1, None], axis=0) * ssim[-1] ** WEIGHTS[-1]


def _smooth_images(seed: int, n: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = scipy.ndimage.gaussian_filter(rng.uniform(0, 255, (n, size, size, 3)), (0, 2, 2, 0))
    return np.clip((x - x.mean()) * 3 + 128, 0, 255).astype(np.uint8)


def test_gaussian_window() -> None:
    np.testing.assert_allclose(np.outer(*[gaussian_window_1d(11, 1.5)] * 2), _gauss2d(11, 1.5))
    np.testing.assert_allclose(np.outer(*[gaussian_window_1d(4, 0.5)] * 2), _gauss2d(4, 0.5))


def test_matches_reference_at_32px() -> None:
    a = _smooth_images(0, 6)
    b = np.clip(a + np.random.default_rng(1).normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    ours = ms_ssim(a, b)
    np.testing.assert_allclose(ours, _reference(a, b), atol=2e-4)
    assert 0.3 < ours.mean() < 0.99


def test_identity_is_one_and_independent_noise_is_low() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(ms_ssim(x, x), 1.0, atol=1e-5)
    y = rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    assert ms_ssim(x, y).mean() < 0.1  # single pairs vary: only 2x2 px at the coarsest scale
    gray = rng.uniform(-1, 1, (4, 28, 28)).astype(np.float32)  # odd coarse sizes are cropped
    np.testing.assert_allclose(ms_ssim(gray, gray), 1.0, atol=1e-5)


def test_diversity() -> None:
    i, j = random_pairs(5, 1000, seed=0)
    assert np.all(i != j) and set(np.unique(i)) == set(range(5))
    rng = np.random.default_rng(3)
    noise = rng.uniform(-1, 1, (20, 32, 32, 3)).astype(np.float32)
    collapsed = np.repeat(noise[:1], 20, axis=0)
    assert ms_ssim_diversity(collapsed, 50, seed=0, batch_size=32) == pytest.approx(1.0, abs=1e-5)
    assert ms_ssim_diversity(noise, 50, seed=0, batch_size=32) < 0.1
    with pytest.raises(ValueError, match="scales need"):
        ms_ssim(noise[:, :8, :8], noise[:, :8, :8])
