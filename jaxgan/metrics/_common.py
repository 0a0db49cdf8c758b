"""Small helpers shared by the metric modules (image conversion, keys, batching).

``to_uint8`` is also the conversion of :mod:`jaxgan.samples` (sample grids).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def as_key(key_or_seed: Any) -> Any:
    """An int seed, a typed PRNG key or a raw ``uint32[2]`` key -> a typed jax PRNG key."""
    import jax
    import jax.numpy as jnp

    if isinstance(key_or_seed, int | np.integer):
        return jax.random.key(int(key_or_seed))
    key = jnp.asarray(key_or_seed) if not hasattr(key_or_seed, "dtype") else key_or_seed
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


def as_nhwc(images: Any, name: str = "images") -> Any:
    """Accept (N, H, W) or (N, H, W, C) arrays; return (N, H, W, C) without copying data."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"{name}: expected (N, H, W) or (N, H, W, C), got shape {images.shape}")
    return images


def auto_batch_size(shape: tuple[int, ...], max_batch: int, max_values: int) -> int:
    """Images per batch for ``shape`` (N, ...): <= ``max_batch``, <= ``max_values`` values, >= 1."""
    return int(max(1, min(max_batch, max_values // int(np.prod(shape[1:])))))


def padded_batches(array: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(batch, valid)``: fixed-size batches, the last zero-padded, so jit compiles once."""
    n = len(array)
    for start in range(0, n, batch_size):
        batch = array[start : start + batch_size]
        valid = len(batch)
        if valid < batch_size and n > batch_size:
            pad = np.zeros((batch_size - valid, *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([np.asarray(batch), pad], axis=0)
        yield batch, valid


def path_names(path: tuple[Any, ...]) -> tuple[str, ...]:
    """Names of a jax key path into an nnx.State (dict keys only; Variable ``.value`` dropped)."""
    return tuple(str(p.key) for p in path if hasattr(p, "key"))
