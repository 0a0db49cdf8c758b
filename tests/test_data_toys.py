"""Toy 2-D distributions: centres, stds and samples per protocol (reference: the papers' numbers)."""

import json

import numpy as np
import pytest

from jaxgan import data
from jaxgan.data import toys

N = 40_000


def _per_mode_stats(dist, n=N, seed=0):
    pts, modes = dist.sample_with_modes(np.random.default_rng(seed), n)
    assert pts.dtype == np.float32 and pts.shape == (n, 2)
    return pts.astype(np.float64), modes


@pytest.mark.parametrize(
    "name, radius_over_scale, std",
    [("ring8", 2 / 1.414, 0.02 / 1.414), ("ring8-veegan", 1.0, 0.01)],
)
def test_rings(name, radius_over_scale, std):
    dist = data.get_toy(name)
    # Independent reference: angles k*pi/4, i.e. linspace(0, 2pi, 8) without its endpoint.
    want = np.array([[np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)] for k in range(8)])
    want *= radius_over_scale
    np.testing.assert_allclose(dist.centers, want, atol=1e-12)
    assert dist.centers.dtype == np.float64
    assert dist.std == pytest.approx(std)
    # 8 distinct modes (the endpoint=True bug gives 7).
    d = np.linalg.norm(dist.centers[:, None] - dist.centers[None], axis=-1)
    assert d[~np.eye(8, dtype=bool)].min() == pytest.approx(
        2 * radius_over_scale * np.sin(np.pi / 8)
    )
    pts, modes = _per_mode_stats(dist)
    for k in range(8):
        sel = pts[modes == k]
        assert abs(len(sel) / N - 1 / 8) < 0.01
        se = std / np.sqrt(len(sel))
        np.testing.assert_allclose(sel.mean(0), want[k], atol=5 * se)
        np.testing.assert_allclose(sel.std(0), std, rtol=0.06)


@pytest.mark.parametrize(
    "name, step_over_scale, std",
    [("grid25", 2 / 2.828, 0.05 / 2.828), ("grid25-veegan", 2.0, 0.05)],
)
def test_grids(name, step_over_scale, std):
    dist = data.get_toy(name)
    want = np.array([(i, j) for i in range(-2, 3) for j in range(-2, 3)], float) * step_over_scale
    assert dist.centers.shape == (25, 2)
    np.testing.assert_allclose(dist.centers, want, atol=1e-12)
    assert dist.std == pytest.approx(std)
    pts, modes = _per_mode_stats(dist)
    # Nearest-centre assignment agrees with the drawn mode (modes are ~20 std apart).
    nearest = np.argmin(np.linalg.norm(pts[:, None] - dist.centers[None], axis=-1), axis=1)
    assert (nearest == modes).all()
    for k in range(25):
        sel = pts[modes == k]
        np.testing.assert_allclose(sel.mean(0), want[k], atol=5 * std / np.sqrt(len(sel)))
        np.testing.assert_allclose(sel.std(0), std, rtol=0.15)


def test_swissroll_matches_sklearn():
    from sklearn.datasets import make_swiss_roll

    dist = data.get_toy("swissroll")
    assert dist.centers.shape == (0, 2) and dist.std == pytest.approx(0.25 / 7.5)
    ours = dist.sample(np.random.default_rng(1), N).astype(np.float64)
    ref = make_swiss_roll(n_samples=N, noise=0.25, random_state=2)[0][:, [0, 2]] / 7.5
    np.testing.assert_allclose(ours.mean(0), ref.mean(0), atol=0.03)
    np.testing.assert_allclose(np.cov(ours.T), np.cov(ref.T), atol=0.03)
    # The radius is |t| / 7.5 with t uniform in [1.5pi, 4.5pi), blurred by the noise.
    r = np.linalg.norm(ours, axis=1)
    r_ref = np.linalg.norm(ref, axis=1)
    np.testing.assert_allclose(np.quantile(r, [0.1, 0.5, 0.9]), np.quantile(r_ref, [0.1, 0.5, 0.9]),
                               atol=0.03)  # fmt: skip


def test_unknown_toy():
    with pytest.raises(ValueError, match="ring8"):
        toys.get_toy("ring7")


def test_toy_pipeline_stream_resume_and_sharding():
    kw = dict(batch_size=64, seed=5, stack=3, labels=True)
    ref = data.load("grid25-veegan", **kw)
    assert ref.kind == "points" and ref.num_examples is None and ref.native_resolution is None
    assert ref.toy.name == "grid25-veegan"
    ref_batches = [next(ref) for _ in range(5)]
    b = ref_batches[0]
    assert b["x"].shape == (3, 64, 2) and b["x"].dtype == np.float32
    assert b["label"].shape == (3, 64) and b["label"].dtype == np.int32
    assert len(b["x"].sharding.device_set) == 8
    assert {s.data.shape for s in b["x"].addressable_shards} == {(3, 8, 2)}
    # Points belong to their labelled mode.
    x, lab = np.asarray(b["x"]), np.asarray(b["label"])
    assert np.abs(x - ref.toy.centers[lab]).max() < 6 * ref.toy.std
    # Batch i comes from default_rng([seed, i]): an independent recomputation.
    want = ref.toy.sample(np.random.default_rng([5, 2]), 3 * 64).reshape(3, 64, 2)
    np.testing.assert_array_equal(np.asarray(ref_batches[2]["x"]), want)

    p = data.load("grid25-veegan", **kw)
    for _ in range(2):
        next(p)
    state = json.loads(json.dumps(p.get_state()))
    p.close()
    q = data.load("grid25-veegan", **kw)
    q.set_state(state)
    for want_b in ref_batches[2:]:
        got = next(q)
        np.testing.assert_array_equal(np.asarray(got["x"]), np.asarray(want_b["x"]))
        np.testing.assert_array_equal(np.asarray(got["label"]), np.asarray(want_b["label"]))
    q.close()
    ref.close()


def test_toy_argument_errors():
    with pytest.raises(ValueError, match="resolution"):
        data.load("ring8", batch_size=8, resolution=32)
    with pytest.raises(ValueError, match="mirror"):
        data.load("ring8", batch_size=8, mirror=True)
    with pytest.raises(ValueError, match="labels"):
        data.load("swissroll", batch_size=8, labels=True)
