"""Sliced Wasserstein distance (SWD) between image sets, as defined by PGGAN.

Karras et al., "Progressive Growing of GANs for Improved Quality, Stability, and Variation"
(ICLR 2018), Sec. 5 and App. D; the metric follows Rabin et al. (2011) on Laplacian-pyramid
patches. The recipe, step by step:

1. Images are converted to uint8 (float ``[-1, 1]`` -> ``rint(x * 127.5 + 127.5)``, clipped).
2. A Laplacian pyramid is built with the 5x5 binomial filter ``[1, 4, 6, 4, 1]^T [1, 4, 6, 4, 1] /
   256`` and mirror padding (``d c b | a b c d | c b a``): ``down = blur(x)[::2, ::2]``,
   ``up = blur4(zero-interleave(down))`` and ``level = x - up``. Levels run from the full resolution
   down to 16x16 (``res, res/2, ... >= 16``); the last one is the low-pass band.
3. From every image and level, 128 random 7x7xC patches are taken, centres uniform in
   ``[3, S - 3)``, flattened in (C, 7, 7) order.
4. Each set of patches (one per image set and level) is normalised per colour channel with its own
   mean and (biased) standard deviation.
5. 512 random unit directions (4 repeats x 128) are drawn per level; both sets are projected,
   each projection sorted, and ``mean |a - b|`` taken; the repeats are averaged.
6. Reported values are x1e3, per level (finest first) and their mean.

Differences from the official numpy code, none of which changes the expected value:

- Randomness is explicit: patch centres for an image come from ``key`` folded with a hash of the
  image's uint8 pixels (and its occurrence count, for exact duplicates), so the result does not
  depend on the order of the images nor on the batch size. Directions come from ``key`` and the
  level index and are shared by both sets, as in the official code.
- Non-square images use ``min(H, W)`` to count levels; an odd size is handled by cropping the
  upsampled band to the finer level's shape. Images smaller than 16 px get a single level
  (the image itself); at least 7 px are needed for a 7x7 patch.
- A channel whose patches have zero standard deviation is divided by 1 (the official code gives
  NaN there).

The paper uses 16,384 images per set; the real-vs-real noise floor (:func:`swd_noise_floor`) is the
SWD between two disjoint real sets of the same size as the comparison.

Descriptor extraction is jitted per batch (on a GPU or TPU when jax has one); the distance per
level projects and sorts in numpy threads on the host (XLA's CPU sort is several times slower).
Descriptors are kept in host memory (float32, ``128 * 49 * C`` values per image and level: about
1.2 GB per level for 16,384 RGB images).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.arrays import to_uint8
from jaxgan.metrics._common import as_key, as_nhwc, auto_batch_size, padded_batches

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def num_pyramid_levels(height: int, width: int, min_resolution: int = 16) -> int:
    """Number of pyramid levels PGGAN uses: resolutions ``S, S/2, ... >= min_resolution`` (>= 1)."""
    res, levels = min(height, width), 0
    while res >= min_resolution:
        levels += 1
        res //= 2
    return max(levels, 1)


def _blur(x: jax.Array, scale: float) -> jax.Array:
    """Separable 5x5 binomial filter (``scale * [1,4,6,4,1] / 16`` per axis), mirror padding.

    x: (B, H, W, C) float32 -> same shape.
    """
    taps = [t * scale / 16.0 for t in _BINOMIAL]
    x = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    h, w = x.shape[1] - 4, x.shape[2] - 4
    x = sum(t * x[:, i : i + h] for i, t in enumerate(taps))
    return sum(t * x[:, :, i : i + w] for i, t in enumerate(taps))


def pyr_down(x: jax.Array) -> jax.Array:
    """cv2.pyrDown-style reduction: blur then keep even rows/columns. (B, H, W, C) -> halves."""
    return _blur(x, 1.0)[:, ::2, ::2]


def pyr_up(x: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """cv2.pyrUp-style expansion to ``shape`` (H, W): zero-interleave, blur with 4x the filter."""
    b, h, w, c = x.shape
    z = jnp.zeros((b, 2 * h, 2 * w, c), x.dtype).at[:, ::2, ::2].set(x)
    return _blur(z, 2.0)[:, : shape[0], : shape[1]]


def laplacian_pyramid(x: jax.Array, num_levels: int) -> list[jax.Array]:
    """Laplacian pyramid of float images (B, H, W, C), finest band first, low-pass band last."""
    levels = [x]
    for _ in range(1, num_levels):
        down = pyr_down(levels[-1])
        levels[-1] = levels[-1] - pyr_up(down, levels[-1].shape[1:3])
        levels.append(down)
    return levels


def _fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser (uint32 -> uint32), a cheap bijective mixer."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


@jax.jit
def _convert_and_hash(images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """images (B, H, W, C) float in [-1, 1] or uint8 -> (uint8 images, (B, 2) uint32 hashes)."""
    u8 = to_uint8(images)
    flat = u8.reshape(u8.shape[0], -1).astype(jnp.uint32)
    idx = jnp.arange(flat.shape[1], dtype=jnp.uint32)
    hashes = []
    for salt in (1, 2):
        weights = _fmix32(idx * jnp.uint32(2) + jnp.uint32(salt)) | jnp.uint32(1)
        total = jnp.sum((flat + jnp.uint32(1)) * weights[None], axis=1, dtype=jnp.uint32)
        hashes.append(_fmix32(total))
    return u8, jnp.stack(hashes, axis=1)


def _patches(level: jax.Array, keys: jax.Array, count: int, size: int) -> jax.Array:
    """``count`` random size x size patches per image: (B, H, W, C) -> (B * count, C * size^2)."""
    b, h, w, c = level.shape
    r = size // 2

    def centres(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        ky, kx = jax.random.split(k)
        return (
            jax.random.randint(ky, (count,), r, h - r),
            jax.random.randint(kx, (count,), r, w - r),
        )

    cy, cx = jax.vmap(centres)(keys)
    off = jnp.arange(-r, r + 1)
    rows = cy[:, :, None, None] + off[None, None, :, None]
    cols = cx[:, :, None, None] + off[None, None, None, :]
    patches = level[jnp.arange(b)[:, None, None, None], rows, cols]  # (B, count, s, s, C)
    return jnp.moveaxis(patches, -1, 2).reshape(b * count, c * size * size)


@functools.partial(jax.jit, static_argnames=("num_levels", "patches_per_image", "patch_size"))
def _batch_descriptors(
    u8: jax.Array,
    base_key: jax.Array,
    hashes: jax.Array,
    occurrence: jax.Array,
    *,
    num_levels: int,
    patches_per_image: int,
    patch_size: int,
) -> list[jax.Array]:
    """Raw (unnormalised) patch descriptors of one uint8 batch, one array per pyramid level."""

    def image_key(h: jax.Array, o: jax.Array) -> jax.Array:
        k = jax.random.fold_in(base_key, h[0])
        return jax.random.fold_in(jax.random.fold_in(k, h[1]), o)

    keys = jax.vmap(image_key)(hashes, occurrence)
    pyramid = laplacian_pyramid(u8.astype(jnp.float32), num_levels)
    out = []
    for lvl, band in enumerate(pyramid):
        level_keys = jax.vmap(lambda k, lvl=lvl: jax.random.fold_in(k, lvl))(keys)
        out.append(_patches(band, level_keys, patches_per_image, patch_size))
    return out


@dataclass
class SWDDescriptors:
    """Normalised patch descriptors of one image set.

    levels: one float32 array (num_images * patches_per_image, C * patch_size^2) per pyramid level,
    finest first, each normalised per channel with its own statistics; resolutions: (H, W) of each
    level.
    """

    levels: list[np.ndarray]
    resolutions: list[tuple[int, int]]
    num_images: int
    channels: int
    patch_size: int


def _iter_batches(images: Any, batch_size: int | None) -> Iterable[tuple[Any, int]]:
    if hasattr(images, "shape") and hasattr(images, "dtype"):
        images = as_nhwc(images)
        bs = batch_size or auto_batch_size(images.shape, 512, 2**24)
        yield from padded_batches(images, bs)
    else:
        for batch in images:
            batch = as_nhwc(batch)
            yield batch, len(batch)


def _normalise(desc: np.ndarray, channels: int) -> np.ndarray:
    """Per-channel standardisation of a descriptor set with its own mean and biased std."""
    d = desc.reshape(desc.shape[0], channels, -1)
    mean = d.mean(axis=(0, 2), keepdims=True, dtype=np.float64)
    std = d.std(axis=(0, 2), keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return ((d - mean) / std).astype(np.float32).reshape(desc.shape)


def swd_descriptors(
    images: Any,
    key_or_seed: Any = 0,
    *,
    batch_size: int | None = None,
    patches_per_image: int = 128,
    patch_size: int = 7,
    min_resolution: int = 16,
) -> SWDDescriptors:
    """Laplacian-pyramid patch descriptors of an image set, ready for :func:`swd_from_descriptors`.

    images: (N, H, W[, C]) float in [-1, 1] or uint8 (numpy or jax), or an iterable of such batches
    (e.g. a generator that samples a GAN batch by batch). key_or_seed: int seed or jax PRNG key;
    use the same one for the sets you compare.
    """
    key = jax.random.fold_in(as_key(key_or_seed), 0)
    seen: dict[tuple[int, int], int] = {}
    chunks: list[list[np.ndarray]] = []
    shape: tuple[int, ...] | None = None
    num_levels = 0
    n = 0
    for batch, valid in _iter_batches(images, batch_size):
        if shape is None:
            shape = tuple(batch.shape[1:])
            if min(shape[:2]) < patch_size:
                raise ValueError(f"images of shape {shape} are smaller than a {patch_size} patch")
            num_levels = num_pyramid_levels(shape[0], shape[1], min_resolution)
            chunks = [[] for _ in range(num_levels)]
        elif tuple(batch.shape[1:]) != shape:
            raise ValueError(f"batch of shape {batch.shape[1:]} differs from the first, {shape}")
        u8, hashes = _convert_and_hash(jnp.asarray(batch))
        hashes_np = np.asarray(hashes)
        occurrence = np.zeros(len(batch), np.uint32)
        for i in range(valid):
            h = (int(hashes_np[i, 0]), int(hashes_np[i, 1]))
            occurrence[i] = seen.get(h, 0)
            seen[h] = int(occurrence[i]) + 1
        descs = _batch_descriptors(
            u8,
            key,
            hashes,
            jnp.asarray(occurrence),
            num_levels=num_levels,
            patches_per_image=patches_per_image,
            patch_size=patch_size,
        )
        for lvl, d in enumerate(descs):
            chunks[lvl].append(np.asarray(d[: valid * patches_per_image]))
        n += valid
    if shape is None or n == 0:
        raise ValueError("swd_descriptors: no images")
    channels = shape[2]
    resolutions, (h, w) = [], shape[:2]
    for _ in range(num_levels):
        resolutions.append((h, w))
        h, w = (h + 1) // 2, (w + 1) // 2
    levels = [_normalise(np.concatenate(c, axis=0), channels) for c in chunks]
    return SWDDescriptors(levels, resolutions, n, channels, patch_size)


def _directions(key: jax.Array, dim: int, dir_repeats: int, dirs_per_repeat: int) -> jax.Array:
    """(dir_repeats, dim, dirs_per_repeat) random unit directions (unit columns)."""
    dirs = jax.random.normal(key, (dir_repeats, dim, dirs_per_repeat), jnp.float32)
    return dirs / jnp.sqrt(jnp.sum(dirs * dirs, axis=1, keepdims=True))


def _sort_rows(x: np.ndarray, pool: ThreadPoolExecutor | None) -> None:
    """Sort each row of a 2-D array in place; blocks of rows (views) go to the pool's threads."""
    if pool is None:
        x.sort(axis=1)
    else:
        list(pool.map(lambda part: part.sort(axis=1), np.array_split(x, 16)))


def _level_swd(
    a: np.ndarray,
    b: np.ndarray,
    key: jax.Array,
    *,
    dir_repeats: int,
    dirs_per_repeat: int,
    pool: ThreadPoolExecutor | None = None,
) -> float:
    """Mean over directions and patches of |sorted(a.d) - sorted(b.d)|; a, b: (M, D) float32.

    numpy sorts (XLA's CPU sort is several times slower) and releases the GIL while sorting, so
    the rows are sorted by ``pool``'s threads.
    """
    dirs = np.asarray(_directions(key, a.shape[1], dir_repeats, dirs_per_repeat))
    results = []
    for d in dirs:
        proj_a = d.T @ a.T  # (dirs_per_repeat, M): one row per direction
        proj_b = d.T @ b.T
        _sort_rows(proj_a, pool)
        _sort_rows(proj_b, pool)
        results.append(np.mean(np.abs(proj_a - proj_b), dtype=np.float64))
    return float(np.mean(results))


def swd_from_descriptors(
    desc_a: SWDDescriptors,
    desc_b: SWDDescriptors,
    key_or_seed: Any = 0,
    *,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
) -> dict[str, Any]:
    """SWD x1e3 per level and mean from two descriptor sets of equal size (see module doc)."""
    if desc_a.num_images != desc_b.num_images:
        raise ValueError(
            f"SWD needs equally many images per set, got {desc_a.num_images} and "
            f"{desc_b.num_images}"
        )
    if desc_a.resolutions != desc_b.resolutions or desc_a.channels != desc_b.channels:
        raise ValueError("SWD: the two sets have different image shapes")
    key = jax.random.fold_in(as_key(key_or_seed), 1)
    threads = min(os.cpu_count() or 1, 16)
    levels = []
    with ThreadPoolExecutor(threads) if threads > 1 else nullcontext() as pool:
        for lvl, (a, b) in enumerate(zip(desc_a.levels, desc_b.levels, strict=True)):
            lkey = jax.random.fold_in(key, lvl)
            d = _level_swd(
                a, b, lkey, dir_repeats=dir_repeats, dirs_per_repeat=dirs_per_repeat, pool=pool
            )
            levels.append(d * 1e3)
    return {
        "levels": levels,
        "mean": float(np.mean(levels)),
        "resolutions": [int(r[0]) for r in desc_a.resolutions],
        "num_images": desc_a.num_images,
    }


def sliced_wasserstein(
    images_a: Any,
    images_b: Any,
    key_or_seed: Any = 0,
    *,
    batch_size: int | None = None,
    patches_per_image: int = 128,
    patch_size: int = 7,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    min_resolution: int = 16,
) -> dict[str, Any]:
    """PGGAN's SWD between two image sets of equal size.

    images_a, images_b: (N, H, W[, C]) float in [-1, 1] or uint8 (or iterables of batches).
    Returns ``{"levels": [x1e3 per level, finest first], "mean": float, "resolutions": [H per
    level], "num_images": N}``.
    """
    kw = dict(
        batch_size=batch_size,
        patches_per_image=patches_per_image,
        patch_size=patch_size,
        min_resolution=min_resolution,
    )
    desc_a = swd_descriptors(images_a, key_or_seed, **kw)
    desc_b = swd_descriptors(images_b, key_or_seed, **kw)
    return swd_from_descriptors(
        desc_a, desc_b, key_or_seed, dir_repeats=dir_repeats, dirs_per_repeat=dirs_per_repeat
    )


def swd_noise_floor(
    reals: Any, key_or_seed: Any = 0, *, num_images: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """SWD between two disjoint random halves of ``reals`` (the real-vs-real noise floor).

    reals: (M, H, W[, C]) array. num_images: size of each half (default M // 2); compare it with an
    SWD computed on the same number of images. kwargs go to :func:`sliced_wasserstein`.
    """
    reals = as_nhwc(reals)
    n = num_images or len(reals) // 2
    if n < 1 or 2 * n > len(reals):
        raise ValueError(f"swd_noise_floor: need 2 * {n} images, got {len(reals)}")
    key = as_key(key_or_seed)
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), len(reals)))
    reals_np = reals if isinstance(reals, np.ndarray) else np.asarray(reals)
    first, second = reals_np[np.sort(perm[:n])], reals_np[np.sort(perm[n : 2 * n])]
    return sliced_wasserstein(first, second, key, **kwargs)
