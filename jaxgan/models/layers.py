"""Progressive-GAN building blocks (Karras et al. 2018, "Progressive Growing of GANs").

Everything is NHWC. Layers are Flax NNX modules; the parameter-free operations are pure functions.

* Equalised learning rate: weights are stored as ``N(0, 1)`` float32 parameters and multiplied at
  run time by ``gain / sqrt(fan_in)`` (He's constant); biases start at zero.
* ``dtype`` on a layer is the *compute* dtype (e.g. ``jnp.bfloat16``): inputs and the scaled weights
  are cast to it, parameters stay float32.
* Pixel norm, minibatch standard deviation and the fade of real images while a new resolution is
  blended in (built on :mod:`jaxgan.arrays`' ``upsample2x``, ``downsample2x`` and ``lerp``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.arrays import downsample2x, lerp, upsample2x

__all__ = [
    "EqualizedConv",
    "EqualizedDense",
    "FromRGB",
    "ToRGB",
    "fade_reals",
    "lrelu",
    "minibatch_stddev",
    "pixel_norm",
]

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2


def lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU with slope 0.2, as in the paper."""
    return jax.nn.leaky_relu(x, LRELU_SLOPE)


def _compute_dtype(dtype, *arrays) -> jnp.dtype:
    """The dtype to compute in: ``dtype`` if given, else the promotion of the inputs."""
    if dtype is not None:
        return jnp.dtype(dtype)
    return jnp.result_type(*arrays)


class EqualizedDense(nnx.Module):
    """Fully connected layer with equalised learning rate.

    ``y = x @ (w * gain / sqrt(in_features)) + b`` with ``w ~ N(0, 1)`` (shape ``(in, out)``,
    float32) and ``b = 0``. Input ``(..., in_features)`` -> output ``(..., out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        gain: float = SQRT2,
        use_bias: bool = True,
        dtype=None,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = in_features
        self.out_features = out_features
        self.gain = float(gain)
        self.scale = self.gain / math.sqrt(in_features)
        self.dtype = dtype
        key = rngs.params()
        self.kernel = nnx.Param(jax.random.normal(key, (in_features, out_features), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = _compute_dtype(self.dtype, x, jnp.float32)
        w = (self.kernel[...] * self.scale).astype(dt)
        y = jnp.matmul(x.astype(dt), w)
        if self.bias is not None:
            y = y + self.bias[...].astype(dt)
        return y


class EqualizedConv(nnx.Module):
    """2-D convolution (NHWC, stride 1, 'SAME' padding) with equalised learning rate.

    Kernel ``w ~ N(0, 1)`` of shape ``(kh, kw, in, out)`` scaled at run time by
    ``gain / sqrt(in * kh * kw)``; bias zero. Input ``(B, H, W, in)`` -> ``(B, H, W, out)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        gain: float = SQRT2,
        use_bias: bool = True,
        dtype=None,
        rngs: nnx.Rngs,
    ) -> None:
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        kh, kw = (int(k) for k in kernel_size)
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = (kh, kw)
        self.gain = float(gain)
        self.scale = self.gain / math.sqrt(in_features * kh * kw)
        self.dtype = dtype
        key = rngs.params()
        shape = (kh, kw, in_features, out_features)
        self.kernel = nnx.Param(jax.random.normal(key, shape, jnp.float32))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = _compute_dtype(self.dtype, x, jnp.float32)
        w = (self.kernel[...] * self.scale).astype(dt)
        y = jax.lax.conv_general_dilated(
            x.astype(dt),
            w,
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.bias is not None:
            y = y + self.bias[...].astype(dt)
        return y


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``x / sqrt(mean(x**2, last axis) + eps)``; reduced in float32, returned in ``x.dtype``."""
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
    return y.astype(x.dtype)


def minibatch_stddev(x: jax.Array, group_size: int = 4) -> jax.Array:
    """Append the minibatch standard deviation as one extra channel (last axis).

    Follows the authors' code: ``G = min(group_size, N)``. Where ``N`` is not a multiple of that
    (the paper's minibatch 14 at 256² and 6 at 512² with groups of 4, on which the official reshape
    fails), ``G`` is the largest divisor of ``N`` not above ``group_size`` (14 -> 2, 6 -> 3).
    Groups are *strided*: sample ``i`` belongs to group ``i mod (N // G)`` (the batch is reshaped to ``(G, N // G, H, W, C)``). Per group, in float32: subtract the group mean, take the
    *biased* variance (mean of squares over the group), add 1e-8, take the square root and average
    over ``H, W, C`` -> one scalar per group, broadcast to every sample of the group as a constant
    feature map. Input ``(N, H, W, C)`` -> output ``(N, H, W, C + 1)`` in ``x.dtype``.
    """
    if x.ndim != 4:
        raise ValueError(f"minibatch_stddev expects NHWC input, got shape {x.shape}")
    if group_size < 1:
        raise ValueError(f"minibatch_stddev group_size must be >= 1, got {group_size}")
    n, h, w, c = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    m = n // g
    y = x.astype(jnp.float32).reshape(g, m, h, w, c)  # sample i -> (i // m, i % m)
    y = y - jnp.mean(y, axis=0, keepdims=True)
    y = jnp.mean(jnp.square(y), axis=0)  # (m, h, w, c): biased variance over the group
    y = jnp.sqrt(y + 1e-8)
    s = jnp.mean(y, axis=(1, 2, 3))  # (m,)
    s = jnp.tile(s, g)  # (n,): sample i gets s[i % m]
    fmap = jnp.broadcast_to(s[:, None, None, None], (n, h, w, 1)).astype(x.dtype)
    return jnp.concatenate([x, fmap], axis=-1)


def fade_reals(x: jax.Array, alpha: jax.Array | float) -> jax.Array:
    """Fade real images like the generator's output during a fade-in.

    ``lerp(upsample2x(downsample2x(x)), x, alpha)``: at ``alpha = 0`` the images carry only the
    previous resolution's detail, at ``alpha = 1`` they are unchanged. ``(B, H, W, C)`` in and out.
    """
    return lerp(upsample2x(downsample2x(x)), x, alpha)


class ToRGB(nnx.Module):
    """1x1 equalised conv, gain 1, linear: ``(B, H, W, in)`` -> ``(B, H, W, channels)``."""

    def __init__(self, in_features: int, channels: int = 3, *, dtype=None, rngs: nnx.Rngs) -> None:
        self.conv = EqualizedConv(in_features, channels, 1, gain=1.0, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x)


class FromRGB(nnx.Module):
    """1x1 equalised conv (gain sqrt 2) + lrelu 0.2: ``(B, H, W, ch)`` -> ``(B, H, W, out)``."""

    def __init__(self, channels: int, out_features: int, *, dtype=None, rngs: nnx.Rngs) -> None:
        self.conv = EqualizedConv(channels, out_features, 1, gain=SQRT2, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return lrelu(self.conv(x))
