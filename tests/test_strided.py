"""The stride-1 rewrites of DCGAN's stride-2 layers equal the Flax layers, to every derivative order.

References: ``nnx.Conv`` / ``nnx.ConvTranspose`` (lax's strided and dilated convolutions) and direct
float64 numpy loops written from the definitions (gather for the convolution, scatter for the
transposed one).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.models import strided
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
    got = strided.conv4x4_stride2(jnp.asarray(x), layer.kernel[...], layer.bias[...])
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
    got = strided.conv_transpose4x4_stride2(jnp.asarray(x), layer.kernel[...], layer.bias[...])
    assert got.shape == (2, 2 * hw[0], 2 * hw[1], 5)
    np.testing.assert_allclose(got, layer(x), rtol=RTOL, atol=ATOL)
    ref = _np_conv_transpose(x.astype(np.float64), np.asarray(layer.kernel[...], np.float64),
                             np.asarray(layer.bias[...], np.float64))  # fmt: skip
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_odd_size_is_rejected():
    with pytest.raises(ValueError, match="even height and width"):
        strided.conv4x4_stride2(jnp.zeros((1, 5, 4, 1)), jnp.zeros((4, 4, 1, 1)), None)


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
