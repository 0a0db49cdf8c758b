"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) as a diversity measure among generated images.

Odena et al. (2017, AC-GAN) and Karras et al. (2018, PGGAN) average MS-SSIM over random pairs of
generated images: lower means more diverse (a collapsed generator scores near 1). The parameters
are the official ones: 5 scales with weights ``[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]``, an 11x11
Gaussian window with sigma 1.5 applied without padding ('valid'), ``k1 = 0.01``, ``k2 = 0.03``,
``max_val = 255`` and 2x2 box downsampling between scales. Per scale, the SSIM (last scale) and
contrast-structure (other scales) maps are averaged over pixels and channels, clipped at 0, raised
to the weights and multiplied, per pair.

Small images: 5 scales need the window to shrink at coarse scales. As in the PGGAN/TF reference
implementation, the window size at each scale is ``min(11, H, W)`` and sigma shrinks in proportion
(``sigma = size * 1.5 / 11``; an even-sized window is centred between pixels). At 32x32 the scales
are 32, 16, 8, 4 and 2 px with windows 11, 11, 8, 4 and 2. An odd size is downsampled by dropping
its last row/column. Images must be at least 16 px (2^(scales-1)) on each side.

Float images in ``[-1, 1]`` are converted to uint8 first (as the official evaluation does with
generated images); uint8 images pass through. Everything is jitted and batched over pairs.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.arrays import downsample2x, to_uint8
from jaxgan.metrics._common import as_nhwc, auto_batch_size, padded_batches

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_window_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps; the 2-D window is their outer product (float64, (size,))."""
    radius = size // 2
    offset = 0.5 if size % 2 == 0 else 0.0
    x = np.arange(-radius, radius + (0 if size % 2 == 0 else 1), dtype=np.float64) + offset
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """Separable 'valid' correlation over the last two axes. (..., H, W) -> (..., H-k+1, W-k+1)."""
    k = len(taps)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    x = sum(float(t) * x[..., i : i + h, :] for i, t in enumerate(taps))
    return sum(float(t) * x[..., i : i + w] for i, t in enumerate(taps))


class _Options(NamedTuple):
    """The metric's parameters (hashable: a static argument of the jitted batch function)."""

    max_val: float
    filter_size: int
    filter_sigma: float
    k1: float
    k2: float
    weights: tuple[float, ...]


def _ssim_and_cs(a: jax.Array, b: jax.Array, o: _Options) -> tuple[jax.Array, jax.Array]:
    """Per-pair mean SSIM and contrast-structure at one scale. a, b: (B, C, H, W) float32."""
    size = min(o.filter_size, a.shape[2], a.shape[3])
    sigma = size * o.filter_sigma / o.filter_size
    taps = gaussian_window_1d(size, sigma)
    # One filter pass over the five stacked maps; the barrier keeps XLA from re-running the
    # (cheap-looking) filter inside every consumer, which made this several times slower on CPU.
    stacked = jnp.stack([a, b, a * a, b * b, a * b])
    mu_a, mu_b, e_aa, e_bb, e_ab = jax.lax.optimization_barrier(_filter_valid(stacked, taps))
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a, var_b, cov = e_aa - mu_aa, e_bb - mu_bb, e_ab - mu_ab
    c1, c2 = (o.k1 * o.max_val) ** 2, (o.k2 * o.max_val) ** 2
    v1 = 2.0 * cov + c2
    v2 = var_a + var_b + c2
    ssim = jnp.mean(((2.0 * mu_ab + c1) * v1) / ((mu_aa + mu_bb + c1) * v2), axis=(1, 2, 3))
    cs = jnp.mean(v1 / v2, axis=(1, 2, 3))
    return ssim, cs


def _halve(x: jax.Array) -> jax.Array:
    """2x2 average pooling of (B, C, H, W); an odd size drops its last row/column."""
    b, c, h, w = x.shape
    x = x[:, :, : h - h % 2, : w - w % 2].reshape(b * c, h - h % 2, w - w % 2, 1)
    return downsample2x(x).reshape(b, c, h // 2, w // 2)


@functools.partial(jax.jit, static_argnames="o")
def _ms_ssim_batch(a: jax.Array, b: jax.Array, o: _Options) -> jax.Array:
    """MS-SSIM per pair of a uint8 batch: (B, H, W, C) x 2 -> (B,) float32."""
    # Channels-first inside: the filters then run along the minor axes (faster on every backend).
    a = jnp.transpose(to_uint8(a).astype(jnp.float32), (0, 3, 1, 2))
    b = jnp.transpose(to_uint8(b).astype(jnp.float32), (0, 3, 1, 2))
    ssims, css = [], []
    for scale in range(len(o.weights)):
        if scale:
            a, b = _halve(a), _halve(b)
        ssim, cs = _ssim_and_cs(a, b, o)
        ssims.append(ssim)
        css.append(cs)
    w = jnp.asarray(o.weights, jnp.float32)
    mcs = jnp.clip(jnp.stack(css[:-1]), 0.0, None)
    last = jnp.clip(ssims[-1], 0.0, None)
    return jnp.prod(mcs ** w[:-1, None], axis=0) * last ** w[-1]


def _options(
    max_val: float,
    filter_size: int,
    filter_sigma: float,
    k1: float,
    k2: float,
    weights: tuple[float, ...],
) -> _Options:
    w = tuple(float(x) for x in weights)
    return _Options(float(max_val), int(filter_size), float(filter_sigma), float(k1), float(k2), w)


def _check_shape(shape: tuple[int, ...], weights: tuple[float, ...]) -> None:
    if min(shape[1:3]) < 2 ** (len(weights) - 1):
        raise ValueError(f"ms_ssim: {len(weights)} scales need >= {2 ** (len(weights) - 1)} px")


def ms_ssim(
    images_a: Any,
    images_b: Any,
    *,
    batch_size: int | None = None,
    max_val: float = 255.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> np.ndarray:
    """MS-SSIM of each pair ``(images_a[i], images_b[i])``.

    images_a, images_b: (N, H, W[, C]) float in [-1, 1] or uint8, H, W >= 2^(len(weights) - 1).
    Returns float32 (N,) values in [0, 1] (1 for identical images).
    """
    a, b = as_nhwc(images_a, "images_a"), as_nhwc(images_b, "images_b")
    if a.shape != b.shape:
        raise ValueError(f"ms_ssim: shapes differ, {a.shape} vs {b.shape}")
    _check_shape(a.shape, weights)
    o = _options(max_val, filter_size, filter_sigma, k1, k2, weights)
    bs = batch_size or auto_batch_size(a.shape, 256, 2**23)
    out = []
    pairs = zip(padded_batches(np.asarray(a), bs), padded_batches(np.asarray(b), bs), strict=True)
    for (batch_a, valid), (batch_b, _) in pairs:
        values = _ms_ssim_batch(jnp.asarray(batch_a), jnp.asarray(batch_b), o)
        out.append(np.asarray(values)[:valid])
    return np.concatenate(out)


def random_pairs(num_images: int, num_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num_pairs`` index pairs (i, j), i != j, uniform over ordered pairs of ``num_images``."""
    if num_images < 2:
        raise ValueError("random_pairs: need at least 2 images")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, num_images, num_pairs)
    j = (i + rng.integers(1, num_images, num_pairs)) % num_images
    return i, j


def ms_ssim_diversity(
    images: Any,
    num_pairs: int = 10_000,
    seed: int = 0,
    *,
    batch_size: int | None = None,
    max_val: float = 255.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> float:
    """Mean MS-SSIM over ``num_pairs`` random pairs of distinct images (lower = more diverse).

    images: (N, H, W[, C]) float in [-1, 1] or uint8, N >= 2. Pairs are gathered batch by batch,
    so large images never get copied all at once.
    """
    images = as_nhwc(images)
    _check_shape(images.shape, weights)
    o = _options(max_val, filter_size, filter_sigma, k1, k2, weights)
    i, j = random_pairs(len(images), num_pairs, seed)
    bs = min(batch_size or auto_batch_size(images.shape, 256, 2**23), num_pairs)
    total = 0.0
    for (bi, valid), (bj, _) in zip(padded_batches(i, bs), padded_batches(j, bs), strict=True):
        values = _ms_ssim_batch(jnp.asarray(images[bi]), jnp.asarray(images[bj]), o)
        total += float(np.sum(np.asarray(values)[:valid], dtype=np.float64))
    return total / num_pairs
