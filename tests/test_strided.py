"""The stride-1 rewrites of stride-2 layers equal the Flax / lax layers, to every derivative order.

References: ``nnx.Conv`` / ``nnx.ConvTranspose`` (lax's strided and dilated convolutions) and direct
float64 numpy loops written from the definitions (gather for the convolution, scatter for the
transposed one).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.arrays import upsample2x
from jaxgan.models import conv_forms, strided
from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

RTOL, ATOL = 2e-5, 2e-5


def _np_conv(x, k, b):
    """Cross-correlation, 4x4, stride 2, one pixel of zero padding on each side (SAME)."""
    bsz, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = np.zeros((bsz, h // 2, w // 2, k.shape[-1]))
    for i in range(h // 2):
        for j in range(w // 2):
            patch = xp[:, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4]
            y[:, i, j] = np.einsum("bhwc,hwco->bo", patch, k)
    return y + b


def _np_conv_transpose(x, k, b):
    """Each input pixel (i, j) adds x[i, j] @ k[a_h, a_w] at output (2i + 2 - a_h, 2j + 2 - a_w)."""
    bsz, h, w, _ = x.shape
    y = np.zeros((bsz, 2 * h + 4, 2 * w + 4, k.shape[-1]))  # 1 guard row/col before, 3 after
    for i in range(h):
        for j in range(w):
            for a_h in range(4):
                for a_w in range(4):
                    y[:, 2 * i + 3 - a_h, 2 * j + 3 - a_w] += x[:, i, j] @ k[a_h, a_w]
    return y[:, 1 : 2 * h + 1, 1 : 2 * w + 1] + b


@pytest.mark.parametrize("hw", [(4, 4), (8, 6)])
def test_conv_matches_flax_and_numpy(hw):
    rng = np.random.default_rng(0)
    layer = nnx.Conv(3, 5, (4, 4), strides=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    layer.bias[...] = jnp.asarray(rng.normal(size=5), jnp.float32)
    x = rng.normal(size=(2, *hw, 3)).astype(np.float32)
    got = strided.conv_stride2(jnp.asarray(x), layer.kernel[...], layer.bias[...])
    np.testing.assert_allclose(got, layer(x), rtol=RTOL, atol=ATOL)
    ref = _np_conv(x.astype(np.float64), np.asarray(layer.kernel[...], np.float64),
                   np.asarray(layer.bias[...], np.float64))  # fmt: skip
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("hw", [(2, 2), (4, 3)])
def test_conv_transpose_matches_flax_and_numpy(hw):
    rng = np.random.default_rng(1)
    layer = nnx.ConvTranspose(3, 5, (4, 4), strides=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    layer.bias[...] = jnp.asarray(rng.normal(size=5), jnp.float32)
    x = rng.normal(size=(2, *hw, 3)).astype(np.float32)
    got = strided.conv_transpose_stride2(jnp.asarray(x), layer.kernel[...], layer.bias[...])
    assert got.shape == (2, 2 * hw[0], 2 * hw[1], 5)
    np.testing.assert_allclose(got, layer(x), rtol=RTOL, atol=ATOL)
    ref = _np_conv_transpose(x.astype(np.float64), np.asarray(layer.kernel[...], np.float64),
                             np.asarray(layer.bias[...], np.float64))  # fmt: skip
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


DN = ("NHWC", "HWIO", "NHWC")
PADDINGS = ("SAME", "VALID", ((2, 2), (1, 0)), ((0, 1), (3, 2)))


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("padding", PADDINGS, ids=["same", "valid", "pairs_a", "pairs_b"])
def test_any_kernel_and_padding_matches_lax_with_derivatives(k, padding):
    """Both rewrites equal lax's stride-2 convolution / transposed convolution on odd and even
    sizes (every kernel fits the input), with the gradients of a squared output (and, for the convolution, of a gradient
    penalty-like double derivative) with respect to input and kernel."""
    rng = np.random.default_rng(k)
    x = jnp.asarray(rng.normal(size=(2, 9, 10, 3)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(k, k, 3, 4)) / np.sqrt(3 * k * k), jnp.float32)
    pairs = (
        (
            strided.conv_stride2,
            lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), padding, dimension_numbers=DN),
        ),  # fmt: skip
        (
            strided.conv_transpose_stride2,
            lambda x, w: jax.lax.conv_transpose(x, w, (2, 2), padding, dimension_numbers=DN),
        ),  # fmt: skip
    )
    for ours, ref in pairs:
        mine = lambda x, w, ours=ours: ours(x, w, None, padding)  # noqa: E731
        want = ref(x, kern)
        assert mine(x, kern).shape == want.shape
        np.testing.assert_allclose(mine(x, kern), want, rtol=RTOL, atol=1e-4)
        sq = lambda f: jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w)) ** 2), argnums=(0, 1))  # noqa: E731
        for a, b in zip(sq(mine)(x, kern), sq(ref)(x, kern), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    conv, ref = strided.conv_stride2, pairs[0][1]
    gp = lambda f: jax.grad(
        lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.tanh(f(x, w))))(x) ** 2)
    )  # noqa: E731
    np.testing.assert_allclose(gp(lambda x, w: conv(x, w, None, padding))(kern), gp(ref)(kern), rtol=1e-4, atol=1e-4)  # fmt: skip


def _np_upsample_conv(x, k, pads):
    """Nearest 2x upsampling by index (row j holds x[j // 2]), zero padding, then the
    cross-correlation written out tap by tap, in float64."""
    up = x[:, np.arange(2 * x.shape[1]) // 2][:, :, np.arange(2 * x.shape[2]) // 2]
    (lo_h, hi_h), (lo_w, hi_w) = pads
    up = np.pad(up, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    kh, kw = k.shape[:2]
    ho, wo = up.shape[1] - kh + 1, up.shape[2] - kw + 1
    return sum(np.einsum("bhwc,co->bhwo", up[:, a : a + ho, b : b + wo], k[a, b])
               for a in range(kh) for b in range(kw))  # fmt: skip


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_upsample_conv_matches_numpy(k):
    """``upsample_conv`` (four phases at the input's resolution) equals nearest upsampling then
    the convolution, in float64 numpy, for every padding, on odd and even sizes."""
    rng = np.random.default_rng(10 + k)
    x = rng.normal(size=(2, 5, 4, 3))
    kern = rng.normal(size=(k, k, 3, 4)) / np.sqrt(3 * k * k)
    for padding in PADDINGS:
        pads = padding if not isinstance(padding, str) else jax.lax.padtype_to_pads((10, 8), (k, k), (1, 1), padding)  # fmt: skip
        got = conv_forms.upsample_conv(jnp.asarray(x, jnp.float32), jnp.asarray(kern, jnp.float32), None, padding)  # fmt: skip
        np.testing.assert_allclose(got, _np_upsample_conv(x, kern, pads), rtol=RTOL, atol=1e-4)


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("padding", PADDINGS, ids=["same", "valid", "pairs_a", "pairs_b"])
def test_upsample_conv_derivatives_match_lax(k, padding):
    """First derivatives and the gradient penalty's double derivative equal lax's."""
    rng = np.random.default_rng(20 + k)
    xj = jnp.asarray(rng.normal(size=(2, 5, 4, 3)), jnp.float32)
    kj = jnp.asarray(rng.normal(size=(k, k, 3, 4)) / np.sqrt(3 * k * k), jnp.float32)
    mine = lambda x, w: conv_forms.upsample_conv(x, w, None, padding)  # noqa: E731
    ref = lambda x, w: jax.lax.conv_general_dilated(upsample2x(x), w, (1, 1), padding, dimension_numbers=DN)  # fmt: skip # noqa: E731
    sq = lambda f: jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w)) ** 2), argnums=(0, 1))  # noqa: E731
    for a, b in zip(sq(mine)(xj, kj), sq(ref)(xj, kj), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    def gp(f):
        return jax.grad(lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.tanh(f(x, w))))(xj) ** 2))

    np.testing.assert_allclose(gp(mine)(kj), gp(ref)(kj), rtol=1e-4, atol=1e-4)


def test_unknown_transpose_padding_is_rejected():
    with pytest.raises(ValueError, match="padding must be"):
        strided.conv_transpose_stride2(
            jnp.zeros((1, 4, 4, 1)), jnp.zeros((4, 4, 1, 1)), None, "FULL"
        )


def _gp_like(model_fn, params, x):
    """sum over samples of ||d f / d x||^2: a WGAN-GP-style double derivative."""

    def score(p, xi):
        return model_fn(p, xi[None])[0]

    g = jax.vmap(jax.grad(score, argnums=1), in_axes=(None, 0))(params, x)
    return jnp.sum(g**2)


def test_critic_phase_equals_native_through_the_gradient_penalty():
    """Scores, first and second derivatives (the WGAN-GP path) agree between the two impls."""
    x = jax.random.uniform(jax.random.key(0), (3, 16, 16, 1), minval=-1, maxval=1)
    models = {
        impl: DCGANCritic(16, 1, norm="layer", base_width=4, conv_impl=impl, rngs=nnx.Rngs(3))
        for impl in ("native", "phase")
    }
    outs, grads = {}, {}
    for impl, m in models.items():
        gdef, params = nnx.split(m)

        def fn(p, xi, gdef=gdef):
            return nnx.merge(gdef, p)(xi)

        outs[impl] = fn(params, x)
        grads[impl] = jax.grad(lambda p, fn=fn: _gp_like(fn, p, x))(params)
    np.testing.assert_allclose(outs["phase"], outs["native"], rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(grads["phase"]), jax.tree.leaves(grads["native"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


def test_generator_phase_equals_native():
    z = jax.random.normal(jax.random.key(1), (4, 8))
    outs = {}
    for impl in ("native", "phase"):
        g = DCGANGenerator(32, 3, 8, base_width=4, conv_impl=impl, rngs=nnx.Rngs(5))
        outs[impl] = g(z)
    assert outs["phase"].shape == (4, 32, 32, 3)
    np.testing.assert_allclose(outs["phase"], outs["native"], rtol=1e-4, atol=1e-5)


def test_unknown_conv_impl_is_rejected():
    with pytest.raises(ValueError, match="conv_impl must be one of"):
        DCGANCritic(16, 1, conv_impl="fast", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("cls, flax_cls, k", [(strided.StridedConv, nnx.Conv, 5),
                                              (strided.StridedConvTranspose, nnx.ConvTranspose, 8)])  # fmt: skip
def test_strided_layers_are_the_flax_layers_rewritten(cls, flax_cls, k):
    """Same parameters (names, shapes, values from the same key) and outputs as the Flax layer at
    stride 2, rewritten ("phase") or native; an unknown impl is refused."""
    x = jax.random.normal(jax.random.key(0), (2, 11, 9, 3))
    pad = ((2, 2), (1, 3))
    ref = flax_cls(3, 4, (k, k), strides=2, padding=pad, rngs=nnx.Rngs(7))
    for impl in ("phase", "native"):
        layer = cls(3, 4, (k, k), padding=pad, impl=impl, rngs=nnx.Rngs(7))
        for a, b in zip(jax.tree.leaves(nnx.state(layer, nnx.Param)), jax.tree.leaves(nnx.state(ref, nnx.Param)), strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(layer(x), ref(x), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="impl must be one of"):
        cls(3, 4, (k, k), impl="fast", rngs=nnx.Rngs(0))
