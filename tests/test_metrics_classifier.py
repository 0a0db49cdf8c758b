"""The digit classifier: trained once here (the slow test), cached, used for mode metrics."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from jaxgan.metrics import classifier as clf_mod
from jaxgan.metrics.fid import FeatureExtractor, fid
from jaxgan.metrics.modes import digit_mode_metrics, stacked_mnist_modes


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("jaxgan_cache"))


@pytest.fixture(scope="module")
def trained(cache_dir: str) -> tuple[clf_mod.DigitClassifier, float]:
    start = time.perf_counter()
    clf = clf_mod.load_digit_classifier(cache_dir, seed=0)
    return clf, time.perf_counter() - start


def test_classifier_reaches_95_percent_held_out(trained: tuple, cache_dir: str) -> None:
    clf, seconds = trained
    print(f"digit classifier: trained in {seconds:.1f} s, held-out accuracy {clf.accuracy:.4f}")
    assert clf.accuracy >= 0.95
    _, _, x_test, y_test = clf_mod.mnist5k_split()
    assert len(y_test) == 500 and np.all(np.bincount(y_test) == 50)
    assert np.mean(clf.predict(x_test) == y_test) == pytest.approx(clf.accuracy)
    assert os.path.exists(os.path.join(cache_dir, "digit_classifier_v1_seed0.npz"))


def test_cached_weights_reload_identically(trained: tuple, cache_dir: str) -> None:
    clf, _ = trained
    start = time.perf_counter()
    again = clf_mod.load_digit_classifier(cache_dir, seed=0)
    assert time.perf_counter() - start < 5.0  # no retraining
    _, _, x_test, _ = clf_mod.mnist5k_split()
    np.testing.assert_allclose(again.logits(x_test[:64]), clf.logits(x_test[:64]), atol=1e-5)
    assert again.accuracy == clf.accuracy
    # 28x28 uint8 digits are accepted and padded.
    from jaxgan.data.offline import mnist5k

    raw, labels = mnist5k()
    assert np.mean(clf.predict(raw[:200]) == labels[:200]) > 0.95


def test_corrupt_cache_is_retrained(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_train(seed: int = 0) -> tuple[clf_mod.DigitNet, float]:
        calls.append(seed)
        from flax import nnx

        return clf_mod.DigitNet(rngs=nnx.Rngs(seed)), 0.1

    monkeypatch.setattr(clf_mod, "train_digit_classifier", fake_train)
    path = tmp_path / "digit_classifier_v1_seed0.npz"
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="retraining"):
        clf = clf_mod.load_digit_classifier(str(tmp_path))
    assert calls == [0] and clf.accuracy == 0.1
    clf_mod.load_digit_classifier(str(tmp_path))  # the rewritten file loads
    assert calls == [0]
    clf_mod.load_digit_classifier(str(tmp_path), retrain=True)
    assert calls == [0, 0]


def test_digit_modes_and_features(trained: tuple) -> None:
    clf, _ = trained
    _, _, x_test, y_test = clf_mod.mnist5k_split()
    full = digit_mode_metrics(x_test, clf)
    assert full["modes_captured"] == 10 and full["reverse_kl"] < 0.02
    only_threes = digit_mode_metrics(x_test[y_test == 3], clf)
    assert only_threes["modes_captured"] <= 3 and only_threes["reverse_kl"] > 1.8

    from jaxgan.data.offline import stacked_mnist

    images, labels = stacked_mnist(300, seed=1)
    x = images.astype(np.float32) / 127.5 - 1.0
    modes = stacked_mnist_modes(x, clf)
    assert np.mean(modes == 100 * labels[:, 0] + 10 * labels[:, 1] + labels[:, 2]) > 0.9

    assert isinstance(clf, FeatureExtractor)
    feats = clf.features(x_test)
    assert feats.shape == (500, 128) and clf.features(x[:5]).shape == (5, 384)
    noise = np.random.default_rng(0).uniform(-1, 1, x_test.shape).astype(np.float32)
    halves = fid(feats[::2], feats[1::2])
    assert halves < 0.1 * fid(feats, clf.features(noise))
