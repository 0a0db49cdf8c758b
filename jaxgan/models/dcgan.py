"""DCGAN generator and critic (Radford et al. 2016) for square power-of-two images >= 16.

G: dense to 4x4xW -> [transposed conv 4x4 stride 2, BatchNorm, ReLU] until resolution/2 ->
transposed conv to C channels -> tanh. Critic: [conv 4x4 stride 2, norm, LeakyReLU(0.2)] down to
4x4 -> dense to one score. ``conv_impl``: how the stride-2 layers
(``StridedConv`` / ``StridedConvTranspose``, same parameters either way) run — "auto" (their fast
form where the step is lowered for CPU, native for a GPU or TPU), "phase" (that form everywhere) or
"native" (``nnx.Conv`` / ``nnx.ConvTranspose``); :func:`jaxgan.models.cpu.for_cpu` can re-choose
each layer's CPU form by timing. The critic's normalisation follows the objective:
BatchNorm only without a gradient penalty (BatchNorm couples the samples the penalty treats
independently).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.arrays import is_power_of_two
from jaxgan.models import CRITIC_NORMS
from jaxgan.models.strided import IMPLS, StridedConv, StridedConvTranspose, check_impl

CONV_IMPLS = IMPLS


def _check_impl(impl: str) -> str:
    return check_impl(impl, "conv_impl")


def _check_resolution(resolution: int) -> int:
    if not is_power_of_two(resolution) or resolution < 16:
        raise ValueError(
            f"DCGAN resolution must be a power of two >= 16, got {resolution} "
            "(28x28 data is padded to 32)."
        )
    return int(resolution).bit_length() - 1


def _width(base: int, level: int, max_width: int) -> int:
    return min(base * 2**level, max_width)


class DCGANGenerator(nnx.Module):
    """z (B, latent_dim) -> images (B, resolution, resolution, channels) in [-1, 1]."""

    def __init__(
        self,
        resolution: int,
        channels: int,
        latent_dim: int = 128,
        *,
        base_width: int = 64,
        max_width: int = 512,
        conv_impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        log2 = _check_resolution(resolution)
        self.conv_impl = _check_impl(conv_impl)
        n_up = log2 - 2  # 4x4 -> resolution
        widths = [_width(base_width, n_up - 1 - i, max_width) for i in range(n_up)]
        self.start = widths[0]
        self.fc = nnx.Linear(latent_dim, 4 * 4 * widths[0], rngs=rngs)
        self.fc_norm = nnx.BatchNorm(widths[0], momentum=0.9, rngs=rngs)
        self.ups = nnx.List(
            [
                StridedConvTranspose(a, b, (4, 4), padding="SAME", impl=conv_impl, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        )
        self.norms = nnx.List([nnx.BatchNorm(b, momentum=0.9, rngs=rngs) for b in widths[1:]])
        self.to_rgb = StridedConvTranspose(
            widths[-1], channels, (4, 4), padding="SAME", impl=conv_impl, rngs=rngs
        )

    def __call__(self, z: jax.Array) -> jax.Array:
        h = self.fc(z).reshape(z.shape[0], 4, 4, self.start)
        h = jax.nn.relu(self.fc_norm(h))
        for up, norm in zip(self.ups, self.norms, strict=True):
            h = jax.nn.relu(norm(up(h)))
        return jnp.tanh(self.to_rgb(h))


class DCGANCritic(nnx.Module):
    """images (B, resolution, resolution, channels) -> scores (B,)."""

    def __init__(
        self,
        resolution: int,
        channels: int,
        *,
        norm: str = "none",
        base_width: int = 64,
        max_width: int = 512,
        conv_impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        if norm not in CRITIC_NORMS:
            raise ValueError(f"critic norm must be one of {CRITIC_NORMS}, got {norm!r}.")
        self.conv_impl = _check_impl(conv_impl)
        log2 = _check_resolution(resolution)
        n_down = log2 - 2
        widths = [channels] + [_width(base_width, i, max_width) for i in range(n_down)]
        self.convs = nnx.List(
            [
                StridedConv(a, b, (4, 4), padding="SAME", impl=conv_impl, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        )
        size = resolution
        norms = []
        for i, w in enumerate(widths[1:]):
            size //= 2
            if norm == "none" or i == 0:  # DCGAN: no norm on the first layer
                norms.append(None)
            elif norm == "batch":
                norms.append(nnx.BatchNorm(w, momentum=0.9, rngs=rngs))
            else:
                # LayerNorm over (H, W, C) of each sample, as in the WGAN-GP code.
                norms.append(nnx.LayerNorm(size * size * w, rngs=rngs))
        self.norms = nnx.List(norms)
        self.out = nnx.Linear(4 * 4 * widths[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = conv(h)
            if norm is not None:
                if isinstance(norm, nnx.LayerNorm):
                    shape = h.shape
                    h = norm(h.reshape(shape[0], -1)).reshape(shape)
                else:
                    h = norm(h)
            h = jax.nn.leaky_relu(h, 0.2)
        return self.out(h.reshape(h.shape[0], -1))[:, 0]
