"""SWD (PGGAN): pyramid vs a scipy reference, noise floor, monotonicity, order invariance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from jaxgan.metrics import swd


def _reference_pyramid(images_nchw: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """The official numpy/scipy construction (mirror-padded 5x5 binomial, cv2-style pyr up/down)."""
    g = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256.0

    def down(m: np.ndarray) -> np.ndarray:
        return scipy.ndimage.convolve(m, g[None, None], mode="mirror")[:, :, ::2, ::2]

    def up(m: np.ndarray) -> np.ndarray:
        z = np.zeros((*m.shape[:2], m.shape[2] * 2, m.shape[3] * 2), m.dtype)
        z[:, :, ::2, ::2] = m
        return scipy.ndimage.convolve(z, g[None, None] * 4.0, mode="mirror")

    pyramid = [images_nchw.astype(np.float32)]
    for _ in range(1, num_levels):
        pyramid.append(down(pyramid[-1]))
        pyramid[-2] -= up(pyramid[-1])
    return pyramid


def test_laplacian_pyramid_matches_reference() -> None:
    import jax.numpy as jnp

    x = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64)).astype(np.uint8)
    ref = _reference_pyramid(x, 3)
    ours = swd.laplacian_pyramid(jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32), 3)
    assert [r.shape[2] for r in ref] == [64, 32, 16]
    for r, o in zip(ref, ours, strict=True):
        np.testing.assert_allclose(np.asarray(o).transpose(0, 3, 1, 2), r, atol=1e-3)


def test_levels_and_resolutions() -> None:
    assert swd.num_pyramid_levels(1024, 1024) == 7
    assert swd.num_pyramid_levels(32, 32) == 2
    assert swd.num_pyramid_levels(28, 28) == 1
    assert swd.num_pyramid_levels(8, 8) == 1


@pytest.fixture(scope="module")
def digits32() -> np.ndarray:
    """mnist5k shuffled, padded to 32x32, float in [-1, 1], (5000, 32, 32, 1)."""
    from jaxgan.data.offline import mnist5k

    images = mnist5k()[0][np.random.default_rng(0).permutation(5000)]
    x = images.astype(np.float32) / 127.5 - 1.0
    return np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)[..., None]


N = 256
BS = 64  # one batch shape for the whole module: one compilation


def test_swd_noise_floor_and_monotonic_degradation(digits32: np.ndarray) -> None:
    a, b = digits32[:N], digits32[N : 2 * N]
    # 128 directions instead of 512 keep this test fast; the estimate stays far below the gaps.
    floor = swd.swd_noise_floor(digits32[2 * N : 4 * N], 0, batch_size=BS, dir_repeats=1)
    desc_a = swd.swd_descriptors(a, 0, batch_size=BS)

    def to_a(images: np.ndarray) -> float:
        desc = swd.swd_descriptors(images, 0, batch_size=BS)
        return swd.swd_from_descriptors(desc_a, desc, 0, dir_repeats=1)["mean"]

    same = to_a(b)
    assert floor["num_images"] == N and floor["resolutions"] == [32, 16]
    # A second draw of the same distribution sits at the real-vs-real noise floor.
    assert 0.5 * floor["mean"] < same < 1.5 * floor["mean"]
    blurred = [to_a(scipy.ndimage.gaussian_filter(b, (0, s, s, 0))) for s in (0.5, 1.0, 2.0)]
    rng = np.random.default_rng(1)
    noise = rng.normal(size=b.shape).astype(np.float32)
    noisy = [to_a(np.clip(b + s * noise, -1, 1)) for s in (0.1, 0.2, 0.4)]
    for series in (blurred, noisy):
        print(floor["mean"], same, series)
        assert same < series[0] < series[1] < series[2], (same, series)
        assert series[-1] > 3 * floor["mean"]


def test_swd_ignores_order_and_batching(digits32: np.ndarray) -> None:
    a, b = digits32[:96], digits32[96:192]
    ref = swd.sliced_wasserstein(a, b, 3, batch_size=BS)  # PGGAN's 4 x 128 directions
    perm = np.random.default_rng(2).permutation(96)
    shuffled = swd.sliced_wasserstein(a[perm], b[::-1], 3, batch_size=48)
    np.testing.assert_allclose(shuffled["levels"], ref["levels"], rtol=1e-5)
    same = swd.sliced_wasserstein(a, a, 3, batch_size=BS, dir_repeats=1)
    assert same["mean"] == pytest.approx(0.0, abs=1e-6)
    other_seed = swd.sliced_wasserstein(a, b, 4, batch_size=BS, dir_repeats=1)
    assert other_seed["mean"] != ref["mean"]


def test_swd_uint8_equals_float_and_rgb_shapes() -> None:
    rng = np.random.default_rng(3)
    x8, y8 = rng.integers(0, 256, (2, 16, 20, 24, 3)).astype(np.uint8)
    x, y = (v.astype(np.float32) / 127.5 - 1.0 for v in (x8, y8))
    r1 = swd.sliced_wasserstein(x, y, 0, dir_repeats=1)
    r2 = swd.sliced_wasserstein(x8, y8, 0, dir_repeats=1)
    assert r1 == r2 and r1["resolutions"] == [20] and len(r1["levels"]) == 1
    with pytest.raises(ValueError, match="equally many"):
        swd.sliced_wasserstein(x, y[:8], 0)
