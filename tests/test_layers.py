"""Progressive-GAN layers against direct float64 numpy computations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.arrays import downsample2x, lerp, to_uint8, upsample2x
from jaxgan.models.layers import (
    EqualizedConv,
    EqualizedDense,
    FromRGB,
    ToRGB,
    fade_reals,
    minibatch_stddev,
    pixel_norm,
)


def _np_conv_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """NHWC x HWIO 'SAME' stride-1 convolution (cross-correlation) in float64."""
    kh, kw = w.shape[:2]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    n, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    out = np.zeros((n, h, wd, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + wd, :], w[i, j])
    return out


def _np_mbstd(x: np.ndarray, group_size: int, strided: bool, biased: bool) -> np.ndarray:
    """Reference minibatch stddev, per-sample groups written out explicitly."""
    n = x.shape[0]
    g = min(group_size, n)
    m = n // g
    groups = (
        [[i for i in range(n) if i % m == k] for k in range(m)]
        if strided
        else [list(range(k * g, (k + 1) * g)) for k in range(m)]
    )
    stat = np.zeros(n)
    for idx in groups:
        y = x[idx].astype(np.float64)
        var = y.var(axis=0, ddof=0 if biased else 1)
        s = np.sqrt(var + 1e-8).mean()
        stat[idx] = s
    fmap = np.broadcast_to(stat[:, None, None, None], x.shape[:3] + (1,))
    return np.concatenate([x, fmap], axis=-1)


def test_equalized_dense_matches_numpy():
    layer = EqualizedDense(6, 5, gain=1.7, rngs=nnx.Rngs(0))
    layer.bias[...] = jnp.arange(5, dtype=jnp.float32) * 0.1
    x = np.random.default_rng(0).normal(size=(3, 6))
    w = np.asarray(layer.kernel[...], np.float64)
    want = x @ (w * 1.7 / math.sqrt(6)) + np.arange(5) * 0.1
    got = np.asarray(layer(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3])
def test_equalized_conv_matches_numpy(k):
    layer = EqualizedConv(4, 3, k, rngs=nnx.Rngs(1))
    layer.bias[...] = jnp.asarray([0.5, -0.25, 1.0], jnp.float32)
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 4))
    w = np.asarray(layer.kernel[...], np.float64) * math.sqrt(2) / math.sqrt(4 * k * k)
    want = _np_conv_same(x, w) + np.array([0.5, -0.25, 1.0])
    got = np.asarray(layer(jnp.asarray(x, jnp.float32)))
    assert got.shape == (2, 5, 6, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_equalized_init_stats():
    conv = EqualizedConv(64, 64, 3, rngs=nnx.Rngs(2))
    dense = EqualizedDense(128, 256, rngs=nnx.Rngs(3))
    for layer in (conv, dense):
        w = np.asarray(layer.kernel[...])
        assert w.dtype == np.float32
        assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02  # N(0, 1), not He-scaled
        assert np.all(np.asarray(layer.bias[...]) == 0)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(64 * 9))
    assert EqualizedDense(4, 2, use_bias=False, rngs=nnx.Rngs(0)).bias is None


def test_torgb_fromrgb():
    to = ToRGB(8, 3, rngs=nnx.Rngs(0))
    fr = FromRGB(3, 8, rngs=nnx.Rngs(1))
    assert to.conv.kernel_size == (1, 1) and to.conv.gain == 1.0
    assert fr.conv.kernel_size == (1, 1) and fr.conv.gain == pytest.approx(math.sqrt(2))
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 3))
    w = np.asarray(fr.conv.kernel[...], np.float64)[0, 0] * math.sqrt(2) / math.sqrt(3)
    pre = np.einsum("nhwc,co->nhwo", x, w)
    want = np.where(pre > 0, pre, 0.2 * pre)
    np.testing.assert_allclose(np.asarray(fr(jnp.asarray(x, jnp.float32))), want, atol=1e-5)
    h = np.random.default_rng(3).normal(size=(2, 4, 4, 8))
    w = np.asarray(to.conv.kernel[...], np.float64)[0, 0] / math.sqrt(8)
    want = np.einsum("nhwc,co->nhwo", h, w)  # linear: negatives survive
    np.testing.assert_allclose(np.asarray(to(jnp.asarray(h, jnp.float32))), want, atol=1e-5)


def test_pixel_norm_matches_numpy():
    x = np.random.default_rng(4).normal(size=(2, 3, 3, 7)) * 3
    want = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-8)
    got = np.asarray(pixel_norm(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # latent form (B, D)
    z = np.random.default_rng(5).normal(size=(4, 9))
    want = z / np.sqrt(np.mean(z**2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(np.asarray(pixel_norm(jnp.asarray(z))), want, rtol=1e-5)


def test_minibatch_stddev_strided_biased():
    rng = np.random.default_rng(6)
    # Per-sample scales differ strongly so that the grouping matters.
    x = rng.normal(size=(8, 2, 2, 3)) * np.arange(1, 9)[:, None, None, None] ** 2
    strided = _np_mbstd(x, 4, strided=True, biased=True)
    contiguous = _np_mbstd(x, 4, strided=False, biased=True)
    unbiased = _np_mbstd(x, 4, strided=True, biased=False)
    got = np.asarray(minibatch_stddev(jnp.asarray(x, jnp.float32), 4))
    assert got.shape == (8, 2, 2, 4)
    np.testing.assert_allclose(got, strided, rtol=1e-5)
    # the test batch does separate the variants
    assert not np.allclose(strided[..., -1], contiguous[..., -1], rtol=1e-2)
    assert not np.allclose(strided[..., -1], unbiased[..., -1], rtol=1e-2)
    assert not np.allclose(got[..., -1], contiguous[..., -1], rtol=1e-2)
    # samples 0 and 2 share a group (strided, N/G = 2 groups); 0 and 1 do not
    assert got[0, 0, 0, -1] == got[2, 1, 1, -1] and got[0, 0, 0, -1] != got[1, 0, 0, -1]
    np.testing.assert_array_equal(got[..., :3], x.astype(np.float32))


def test_minibatch_stddev_small_batch_and_errors():
    x = np.random.default_rng(7).normal(size=(3, 2, 2, 2))
    got = np.asarray(minibatch_stddev(jnp.asarray(x, jnp.float32), 4))  # G = min(4, 3) = 3
    np.testing.assert_allclose(got, _np_mbstd(x, 4, strided=True, biased=True), rtol=1e-5)
    # The paper's batch 6 (512²) and 14 (256²) with groups of 4: the largest divisor <= 4 is used.
    for n, g in ((6, 3), (14, 2)):
        y = np.random.default_rng(n).normal(size=(n, 2, 2, 2))
        got = np.asarray(minibatch_stddev(jnp.asarray(y, jnp.float32), 4))
        np.testing.assert_allclose(got, _np_mbstd(y, g, strided=True, biased=True), rtol=1e-5)
    xb = jnp.asarray(x, jnp.bfloat16)
    assert minibatch_stddev(xb, 4).dtype == jnp.bfloat16


def test_to_uint8_rounds_to_nearest_and_clips():
    x = np.array([-2.0, -1.0, -0.996, 0.0, 0.5, 0.999, 1.0, 3.0], np.float32)
    # 127.5 x + 127.5: -127.5, 0, 0.51, 127.5, 191.25, 254.87, 255, 510 -> rint (half to even), clip
    want = np.array([0, 0, 1, 128, 191, 255, 255, 255], np.uint8)
    np.testing.assert_array_equal(to_uint8(x), want)
    np.testing.assert_array_equal(np.asarray(to_uint8(jnp.asarray(x))), want)
    assert to_uint8(want) is want  # uint8 passes through


def test_up_down_sample_and_fade():
    x = np.random.default_rng(8).normal(size=(2, 4, 6, 3))
    up = np.asarray(upsample2x(jnp.asarray(x)))
    assert up.shape == (2, 8, 12, 3)
    for i in range(8):
        for j in range(12):
            np.testing.assert_array_equal(up[:, i, j], x[:, i // 2, j // 2].astype(np.float32))
    down = np.asarray(downsample2x(jnp.asarray(x)))
    want = (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]) / 4
    np.testing.assert_allclose(down, want, rtol=1e-6, atol=1e-6)
    xj = jnp.asarray(x, jnp.float32)
    low = np.repeat(np.repeat(want, 2, 1), 2, 2)
    np.testing.assert_allclose(np.asarray(fade_reals(xj, 0.0)), low, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(fade_reals(xj, 1.0)), np.asarray(xj))
    np.testing.assert_allclose(np.asarray(fade_reals(xj, 0.25)), 0.75 * low + 0.25 * x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(lerp(jnp.ones(3), jnp.zeros(3), 0.3)), 0.7 * np.ones(3))
    with pytest.raises(ValueError):
        downsample2x(jnp.zeros((1, 3, 4, 1)))


def test_bf16_compute_keeps_float32_params():
    conv = EqualizedConv(4, 4, 3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    ref = EqualizedConv(4, 4, 3, rngs=nnx.Rngs(0))
    dense = EqualizedDense(4, 4, dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
    for leaf in jax.tree.leaves(nnx.state(conv, nnx.Param)) + jax.tree.leaves(
        nnx.state(dense, nnx.Param)
    ):
        assert leaf.dtype == jnp.float32
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4))
    y = conv(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(ref(x)), atol=0.1, rtol=0.05)
    assert dense(jnp.ones((2, 4))).dtype == jnp.bfloat16
    # gradients w.r.t. the float32 parameters are float32
    grads = nnx.grad(lambda m: jnp.sum(m(x).astype(jnp.float32)))(conv)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


def test_slerp_follows_the_great_circle():
    from jaxgan.arrays import slerp

    e1, e2 = jnp.array([[3.0, 0.0]]), jnp.array([[0.0, 3.0]])
    t = jnp.array([[0.0], [0.5], [1.0]])
    out = np.asarray(slerp(e1, e2, t))
    # a quarter circle of radius 3: the midpoint is at 45 degrees, not at the chord's middle
    np.testing.assert_allclose(
        out, [[3, 0], [3 / math.sqrt(2), 3 / math.sqrt(2)], [0, 3]], atol=1e-5
    )


def test_saved_run_interpolates_along_slerp_paths(tmp_path):
    import jaxgan
    from jaxgan import configs

    config = jaxgan.override(configs.get("toy-wgan-gp"), steps=2, hidden=(8, 8), batch_size=8,
                             sample_every=0, num_devices=1)  # fmt: skip
    jaxgan.train(config, str(tmp_path), quiet=True)
    run = jaxgan.open_run(str(tmp_path))
    path = run.interpolate(steps=5, rows=2, seed=1)
    assert path.shape == (10, 2)
    k0, k1 = jax.random.split(jax.random.key(1))
    a = jax.random.normal(k0, (2, 1, config.model.latent_dim))
    np.testing.assert_allclose(path[::5], run.sample(z=a[:, 0]), atol=1e-6)  # each row starts at a
