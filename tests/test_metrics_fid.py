"""FID (closed form for Gaussians), KID, precision/recall, and a lightweight package import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics.fid import (
    FeatureExtractor,
    extract_features,
    fid,
    frechet_distance,
    kid,
    knn_radii,
    mmd2_unbiased,
    precision_recall,
)


def _random_rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def test_frechet_distance_closed_form_commuting() -> None:
    d = 6
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    q = _random_rotation(d, 1)
    # Same eigenvectors: Tr((S1 S2)^1/2) = sum(sqrt(a * b)).
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_general_vs_sqrtm() -> None:
    d = 10
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(d, d)), rng.normal(size=(d, 3))
    s1, s2 = x @ x.T + 0.1 * np.eye(d), y @ y.T  # s2 is singular (rank 3)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ref_tr = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * ref_tr
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)


def test_fid_of_gaussian_samples_matches_closed_form() -> None:
    d, n = 8, 50_000
    rng = np.random.default_rng(3)
    q = _random_rotation(d, 4)
    a, b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    xa = rng.normal(size=(n, d)) * np.sqrt(a) @ q.T + mu1
    xb = rng.normal(size=(n, d)) * np.sqrt(b) @ q.T + mu2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    assert fid(xa.astype(np.float32), xb.astype(np.float32)) == pytest.approx(expected, rel=0.03)
    assert fid(xa, xa) == pytest.approx(0.0, abs=1e-8)
    few = fid(xa[:5], xb[:5])  # fewer samples than dimensions: singular, still finite
    assert np.isfinite(few) and few > 0


def test_mmd2_unbiased_matches_naive_sum() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    k = lambda u, v: (u @ v / 3 + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_same_vs_different() -> None:
    rng = np.random.default_rng(6)
    d = 16
    a, b = rng.normal(size=(1500, d)), rng.normal(size=(1500, d))
    c = rng.normal(size=(1500, d)) + 0.3
    same = kid(a, b, num_subsets=20, subset_size=500)
    diff = kid(a, c, num_subsets=20, subset_size=500)
    assert abs(same["mean"]) < 0.01 and abs(same["mean"]) < 3 * same["std"]
    assert diff["mean"] > 10 * abs(same["mean"]) and diff["mean"] > 3 * diff["std"]
    small = kid(a[:50], b[:80], num_subsets=5)  # subsets shrink to the smaller set
    assert np.isfinite(small["mean"])


def test_precision_recall() -> None:
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    np.testing.assert_allclose(knn_radii(x, k=1), [1.0, 1.0, 4.0, 49.0])
    rng = np.random.default_rng(7)
    cluster = lambda n, centre: rng.normal(size=(n, 4)) * 0.3 + centre
    real = np.concatenate([cluster(400, 0.0), cluster(400, 5.0)])
    collapsed = cluster(800, 0.0)
    pr = precision_recall(real, collapsed)
    assert pr["precision"] > 0.9 and 0.4 < pr["recall"] < 0.6
    same = precision_recall(real, np.concatenate([cluster(400, 0.0), cluster(400, 5.0)]))
    assert same["precision"] > 0.85 and same["recall"] > 0.85
    off = precision_recall(real, cluster(300, 20.0))
    assert off == {"precision": 0.0, "recall": 0.0}


def test_feature_extractor_protocol_and_chunking() -> None:
    class Means:
        name = "means"

        def features(self, images: np.ndarray) -> np.ndarray:
            return images.reshape(len(images), -1, images.shape[-1]).mean(axis=1)

    assert isinstance(Means(), FeatureExtractor)
    images = np.random.default_rng(8).uniform(-1, 1, (7, 4, 4, 3))
    np.testing.assert_allclose(extract_features(Means(), images, 3), Means().features(images))


def test_import_is_light() -> None:
    code = (
        "import sys, jaxgan.metrics as m; assert 'jax' not in sys.modules; "
        "m.toy_mode_metrics; m.kid; m.sliced_wasserstein; "
        "bad = [k for k in sys.modules if k.split('.')[0] in "
        "('tensorflow', 'tensorflow_datasets', 'grain', 'orbax', 'torch')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
