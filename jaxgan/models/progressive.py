"""Progressive generator and critic (Karras et al. 2018, "Progressive Growing of GANs").

Both networks are built once for the final resolution: every block and every toRGB / fromRGB exists
from the start, so parameters (and optimiser state) keep one shape across the whole schedule. A
forward pass takes the stage resolution ``res`` as a static Python int and the fade coefficient
``alpha`` as an optional (traceable) scalar, so one jitted function per ``(res, fading)`` pair
serves a whole phase.

Widths follow the paper: the block at resolution ``2**r`` has ``nf(r - 1)`` feature maps with
``nf(stage) = min(fmap_base // 2**stage, fmap_max)`` (512 at 4..32, then 256, 128, 64, 32, 16
with the defaults 8192 / 512). Images are NHWC.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.arrays import downsample2x, is_power_of_two, lerp, upsample2x
from jaxgan.models.layers import (
    SQRT2,
    EqualizedConv,
    EqualizedDense,
    FromRGB,
    ToRGB,
    lrelu,
    minibatch_stddev,
    pixel_norm,
)

__all__ = ["ProgressiveCritic", "ProgressiveGenerator", "nf"]


def nf(stage: int, fmap_base: int = 8192, fmap_max: int = 512) -> int:
    """Feature maps at ``stage``: ``min(fmap_base // 2**stage, fmap_max)`` (at least 1).

    The block at resolution ``2**r`` uses ``nf(r - 1)``.
    """
    return max(1, min(fmap_base // 2**stage, fmap_max))


def _log2_res(resolution: int, what: str = "resolution") -> int:
    """``log2(resolution)`` for a power of two >= 4, else ValueError."""
    if not is_power_of_two(resolution) or resolution < 4:
        raise ValueError(f"{what} must be a power of two >= 4, got {resolution!r}")
    return int(resolution).bit_length() - 1


def _key(res: int) -> str:
    return f"res{res}"


class _GBlock4(nnx.Module):
    """G's 4x4 block: latent ``(B, latent)`` -> features ``(B, 4, 4, nf)``.

    Dense (gain sqrt(2)/4, as the authors' code) to 4*4*nf, per-channel bias, lrelu, pixel norm,
    then conv3x3, lrelu, pixel norm. The latent is pixel-normalised by the caller.
    """

    def __init__(self, latent_dim: int, features: int, *, dtype, rngs: nnx.Rngs) -> None:
        self.features = features
        self.dense = EqualizedDense(
            latent_dim, 16 * features, gain=SQRT2 / 4, use_bias=False, dtype=dtype, rngs=rngs
        )
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.conv = EqualizedConv(features, features, 3, dtype=dtype, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = self.dense(z).reshape(z.shape[0], 4, 4, self.features)
        h = pixel_norm(lrelu(h + self.bias[...].astype(h.dtype)))
        return pixel_norm(lrelu(self.conv(h)))


class _GBlockUp(nnx.Module):
    """G block: upsample 2x -> conv3x3 -> lrelu -> PN -> conv3x3 -> lrelu -> PN.

    ``(B, H, W, in)`` -> ``(B, 2H, 2W, out)``.
    """

    def __init__(self, in_features: int, features: int, *, dtype, rngs: nnx.Rngs) -> None:
        self.conv0 = EqualizedConv(in_features, features, 3, dtype=dtype, rngs=rngs)
        self.conv1 = EqualizedConv(features, features, 3, dtype=dtype, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        h = upsample2x(h)
        h = pixel_norm(lrelu(self.conv0(h)))
        return pixel_norm(lrelu(self.conv1(h)))


class _DBlockDown(nnx.Module):
    """Critic block: conv3x3 -> lrelu -> conv3x3 -> lrelu -> 2x2 avg-pool.

    ``(B, H, W, in)`` -> ``(B, H/2, W/2, out)``.
    """

    def __init__(self, in_features: int, features: int, *, dtype, rngs: nnx.Rngs) -> None:
        self.conv0 = EqualizedConv(in_features, in_features, 3, dtype=dtype, rngs=rngs)
        self.conv1 = EqualizedConv(in_features, features, 3, dtype=dtype, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        h = lrelu(self.conv0(h))
        h = lrelu(self.conv1(h))
        return downsample2x(h)


class _DBlock4(nnx.Module):
    """Critic's 4x4 block: mbstd -> conv3x3 -> lrelu -> dense -> lrelu -> dense 1 (gain 1).

    ``(B, 4, 4, in)`` -> scores ``(B,)``. The minibatch-stddev layer is skipped when
    ``mbstd_group_size <= 1`` (as in the authors' code).
    """

    def __init__(
        self,
        in_features: int,
        features: int,
        dense_features: int,
        *,
        mbstd_group_size: int,
        dtype,
        rngs: nnx.Rngs,
    ) -> None:
        self.mbstd_group_size = mbstd_group_size
        extra = 1 if mbstd_group_size > 1 else 0
        self.conv = EqualizedConv(in_features + extra, features, 3, dtype=dtype, rngs=rngs)
        self.dense0 = EqualizedDense(16 * features, dense_features, dtype=dtype, rngs=rngs)
        self.dense1 = EqualizedDense(dense_features, 1, gain=1.0, dtype=dtype, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        if self.mbstd_group_size > 1:
            h = minibatch_stddev(h, self.mbstd_group_size)
        h = lrelu(self.conv(h))
        h = lrelu(self.dense0(h.reshape(h.shape[0], -1)))
        return self.dense1(h)[:, 0]


def _check_stage(res: int, resolution: int, alpha, who: str) -> None:
    """Validate a static stage resolution (and that a fade has a previous stage)."""
    if isinstance(res, bool) or not isinstance(res, int):
        raise TypeError(f"{who}: res must be a static Python int, got {type(res).__name__}")
    _log2_res(res, f"{who}: res")
    if res > resolution:
        raise ValueError(f"{who}: res={res} exceeds the network's final resolution {resolution}")
    if alpha is not None and res == 4:
        raise ValueError(f"{who}: cannot fade into res=4 (there is no previous stage)")


class ProgressiveGenerator(nnx.Module):
    """PGGAN generator for final ``resolution`` (a power of two >= 4), every stage built up front.

    Call ``G(z, res, alpha=None)``: ``z`` of shape ``(B, latent_dim)`` (pixel-normalised on input),
    ``res`` a static int in ``4, 8, ..., resolution``. With ``alpha=None`` the output is the stable
    network at ``res``; with ``alpha`` (a scalar in [0, 1], may be traced) it fades into ``res``:
    ``lerp(upsample2x(toRGB_prev(h_prev)), toRGB_res(h_res), alpha)``. Returns linear (no tanh)
    float32 images ``(B, res, res, channels)``, also when computing in ``dtype`` (e.g. bf16).
    """

    def __init__(
        self,
        resolution: int,
        *,
        latent_dim: int = 512,
        channels: int = 3,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        dtype=None,
        rngs: nnx.Rngs,
    ) -> None:
        log2 = _log2_res(resolution)
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.channels = channels
        self.fmap_base = fmap_base
        self.fmap_max = fmap_max
        self.dtype = dtype

        def width(r: int) -> int:
            return nf(r - 1, fmap_base, fmap_max)

        blocks: dict[str, nnx.Module] = {}
        to_rgb: dict[str, nnx.Module] = {}
        for r in range(2, log2 + 1):
            res = 2**r
            if r == 2:
                blocks[_key(res)] = _GBlock4(latent_dim, width(r), dtype=dtype, rngs=rngs)
            else:
                blocks[_key(res)] = _GBlockUp(width(r - 1), width(r), dtype=dtype, rngs=rngs)
            to_rgb[_key(res)] = ToRGB(width(r), channels, dtype=dtype, rngs=rngs)
        self.blocks = nnx.Dict(blocks)
        self.to_rgb = nnx.Dict(to_rgb)

    def __call__(self, z: jax.Array, res: int, alpha: jax.Array | float | None = None) -> jax.Array:
        _check_stage(res, self.resolution, alpha, "ProgressiveGenerator")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {z.shape}")
        dt = self.dtype if self.dtype is not None else jnp.float32
        h = self.blocks[_key(4)](pixel_norm(z.astype(dt)))
        h_prev = None
        r = 8
        while r <= res:
            h_prev = h
            h = self.blocks[_key(r)](h)
            r *= 2
        out = self.to_rgb[_key(res)](h).astype(jnp.float32)
        if alpha is None:
            return out
        prev = upsample2x(self.to_rgb[_key(res // 2)](h_prev).astype(jnp.float32))
        return lerp(prev, out, jnp.asarray(alpha, jnp.float32))


class ProgressiveCritic(nnx.Module):
    """PGGAN critic (discriminator) for final ``resolution``, every stage built up front.

    Call ``D(x, res, alpha=None)`` with images ``x`` of shape ``(B, res, res, channels)``. Stable:
    ``fromRGB_res`` then the blocks down to 4x4. Fading into ``res`` (``alpha`` a scalar in [0, 1],
    may be traced): features at ``res/2`` are
    ``lerp(fromRGB_prev(downsample2x(x)), block_res(fromRGB_res(x)), alpha)``, then the rest as
    usual. Returns float32 scores ``(B,)``. With minibatch stddev on, ``B`` must be a multiple of
    ``min(mbstd_group_size, B)``.
    """

    def __init__(
        self,
        resolution: int,
        *,
        channels: int = 3,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
        dtype=None,
        rngs: nnx.Rngs,
    ) -> None:
        log2 = _log2_res(resolution)
        self.resolution = resolution
        self.channels = channels
        self.fmap_base = fmap_base
        self.fmap_max = fmap_max
        self.mbstd_group_size = mbstd_group_size
        self.dtype = dtype

        def width(stage: int) -> int:
            return nf(stage, fmap_base, fmap_max)

        from_rgb: dict[str, nnx.Module] = {}
        blocks: dict[str, nnx.Module] = {}
        for r in range(log2, 1, -1):
            res = 2**r
            from_rgb[_key(res)] = FromRGB(channels, width(r - 1), dtype=dtype, rngs=rngs)
            if r >= 3:
                blocks[_key(res)] = _DBlockDown(width(r - 1), width(r - 2), dtype=dtype, rngs=rngs)
        self.from_rgb = nnx.Dict(from_rgb)
        self.blocks = nnx.Dict(blocks)
        self.final = _DBlock4(
            width(1), width(1), width(0), mbstd_group_size=mbstd_group_size, dtype=dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array, res: int, alpha: jax.Array | float | None = None) -> jax.Array:
        _check_stage(res, self.resolution, alpha, "ProgressiveCritic")
        if x.ndim != 4 or x.shape[1:] != (res, res, self.channels):
            raise ValueError(
                f"x must have shape (B, {res}, {res}, {self.channels}) at res={res}, got {x.shape}"
            )
        dt = self.dtype if self.dtype is not None else jnp.float32
        x = x.astype(dt)
        h = self.from_rgb[_key(res)](x)
        if res > 4:
            h = self.blocks[_key(res)](h)
            if alpha is not None:
                prev = self.from_rgb[_key(res // 2)](downsample2x(x))
                a = jnp.asarray(alpha, jnp.float32)
                h = lerp(prev.astype(jnp.float32), h.astype(jnp.float32), a).astype(dt)
        r = res // 2
        while r >= 8:
            h = self.blocks[_key(r)](h)
            r //= 2
        return self.final(h).astype(jnp.float32)
