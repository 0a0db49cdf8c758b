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


def test_cached_weights_reload_identically(trained: tuple, cache_dir: str, monkeypatch) -> None:
    clf, _ = trained

    def no_retraining(*args, **kw):
        raise AssertionError("the cached weights were not used")

    monkeypatch.setattr(clf_mod, "train_digit_classifier", no_retraining)
    again = clf_mod.load_digit_classifier(cache_dir, seed=0)
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


def test_confident_share_against_softmax_by_hand() -> None:
    from jaxgan.metrics.modes import confident_share

    logits = np.array([[10.0, 0, 0], [1.0, 1.0, 0], [0, 0, 2.8], [0, 0, 3.0]])
    # max probabilities by hand: 0.99991, 0.42232, e^2.8 / (e^2.8 + 2) = 0.8916, 0.9095
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert confident_share(logits) == np.mean(p.max(1) >= 0.9) == 0.5
    assert confident_share(logits + 1000.0) == 0.5  # stable for large logits
    assert confident_share(np.zeros((0, 10))) == 0.0


def test_evaluation_gives_real_references(trained: tuple, cache_dir: str) -> None:
    from jaxgan.evaluation import evaluate_images, real_images

    real = real_images("mnist5k", 512, 32, seed=7)
    # Two digits drawn over each other: no nameable digit (uniform noise is no test of that: the
    # classifier is confident on it, so the share is read together with FID and SWD).
    mixed = np.maximum(real, np.roll(real, 1, axis=0))
    noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
    kw = {"metrics": ["modes", "fid", "kid"], "cache_dir": cache_dir}
    as_fake = evaluate_images(real, "mnist5k", **kw)
    bad = evaluate_images(noise, "mnist5k", **kw)
    assert as_fake["modes/confident_share_real"] > 0.9
    assert abs(as_fake["modes/confident_share"] - as_fake["modes/confident_share_real"]) < 0.05
    two = evaluate_images(mixed, "mnist5k", metrics=["modes"], cache_dir=cache_dir)
    assert two["modes/confident_share"] < 0.7 * two["modes/confident_share_real"]
    # Real digits against real digits: FID/KID near the reference, far below noise's.
    assert as_fake["fid"] < 3 * as_fake["fid/real_vs_real"] < 0.2 * bad["fid"]
    assert bad["fid/real_vs_real"] == pytest.approx(as_fake["fid/real_vs_real"])
    assert as_fake["kid/mean/real_vs_real"] < 0.1 * bad["kid/mean"]
