"""Array helpers shared by data, models, metrics and training: one home for each.

NHWC images; the jax functions trace under ``jit``. ``to_uint8`` works on numpy and jax arrays.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_power_of_two(n: int) -> bool:
    """True for the integers 1, 2, 4, 8, ... (numpy integers too; bools and floats are not)."""
    return isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 and not n & (n - 1)


def upsample2x(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling: ``(B, H, W, C)`` -> ``(B, 2H, 2W, C)``."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample2x(x: jax.Array) -> jax.Array:
    """2x2 average pooling, stride 2: ``(B, H, W, C)`` -> ``(B, H/2, W/2, C)`` (H, W even)."""
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"downsample2x needs even height and width, got shape {x.shape}")
    return jnp.mean(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def lerp(a: jax.Array, b: jax.Array, t: jax.Array | float) -> jax.Array:
    """``(1 - t) * a + t * b``: exactly ``a`` at ``t = 0`` and exactly ``b`` at ``t = 1``."""
    t = jnp.asarray(t, dtype=jnp.result_type(a, b))
    return (1 - t) * a + t * b


def to_uint8(images: Any) -> Any:
    """Float images in [-1, 1] -> uint8 in 0..255 (rint, clipped); uint8 input passes through.

    Works on numpy and jax arrays alike (the conversion PGGAN applies before its metrics).
    """
    if images.dtype == np.uint8:
        return images
    xp: Any = np if isinstance(images, np.ndarray) else jnp
    scaled = xp.rint(images.astype(xp.float32) * 127.5 + 127.5)
    return xp.clip(scaled, 0, 255).astype(xp.uint8)


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """Spherical interpolation between latents ``a`` and ``b`` (``(..., D)``) at ``t`` in [0, 1]
    (broadcast): the path stays at the norms Gaussian latents have, unlike ``lerp``."""
    norms = jnp.linalg.norm(a, axis=-1, keepdims=True) * jnp.linalg.norm(b, axis=-1, keepdims=True)
    omega = jnp.arccos(jnp.clip(jnp.sum(a * b, -1, keepdims=True) / norms, -1.0, 1.0))
    return (jnp.sin((1 - t) * omega) * a + jnp.sin(t * omega) * b) / jnp.maximum(
        jnp.sin(omega), 1e-6
    )
