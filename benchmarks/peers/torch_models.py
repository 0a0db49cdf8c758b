"""PyTorch references of jaxgan's benchmark cases, layer for layer, and two external conv GANs
(whose jaxgan side, Flax NNX mirrors of their networks, is ``peers/external.py``).

Torch only at import (``pip install -r benchmarks/peers/requirements.txt``); JAX and jaxgan are
imported lazily by the ``jaxgan_*`` helpers and :func:`copy_from_jaxgan`, so a timing process can
load this module without starting JAX. Images are NCHW here (NHWC in jaxgan); every reshape of a
dense layer to or from feature maps has its weight permuted accordingly in :func:`copy_from_jaxgan`.

Cases (networks; objective, optimizer, batch, critic updates per generator update):

* ``toy``: MLPs 2 → 512³ → 2 and 2 → 512³ → 1, ReLU; WGAN-GP λ 0.1, Adam 1e-4 β (0.5, 0.9),
  256, 5.
* ``mnist_mlp_gp``: G 100 → 128 → 256 → 512 → 1024 → 784 (BatchNorm after hidden layers 2-4,
  LeakyReLU 0.2, tanh), D 784 → 512 → 256 → 1 (LeakyReLU); WGAN-GP λ 10, Adam 2e-4
  β (0.5, 0.999), 64, 5.
* ``mnist_mlp_clip``: the same networks; WGAN, RMSProp 5e-5 (decay 0.9, ε inside the square
  root, as optax), weight clipping 0.01, 64, 5.
* ``dcgan64``: jaxgan's DCGAN at 64² RGB, latent 128, base width 64, LayerNorm critic; WGAN-GP
  λ 10, Adam 1e-4 β (0, 0.9), 64, 5.
* ``prog16``, ``prog32``: the progressive networks built for R (stages 4..R) at the main job's
  widths (fmap_base 256, fmap_max 64, latent 64), 1 channel, the stable phase at R (α = 1);
  WGAN-GP λ 10 + drift 0.001, Adam 1e-3 β (0, 0.99), generator EMA 0.99, 32, 1.
* ``pytorch_gan_dcgan32``: eriklindernoren/PyTorch-GAN ``implementations/dcgan/dcgan.py`` at 32²,
  1 channel, latent 100; BCE, Adam 2e-4 β (0.5, 0.999), 64, a G update then a D update.
* ``wgan_gp_mnist``: caogang/wgan-gp ``gan_mnist.py`` (DIM 64, latent 128, 28²); WGAN-GP λ 10,
  Adam 1e-4 β (0.5, 0.9), 50, 5.

The first six mirror ``benchmarks/cases.py`` (``prog16``/``prog32`` are not benchmark cases there:
:func:`jaxgan_case` builds them from the ``main`` preset). The last two, :data:`EXTERNAL_CASES`,
have networks from outside jaxgan: :func:`jaxgan_case` gives them the ``dcgan-mnist5k`` preset with
the script's objective and optimizer settings and :mod:`peers.external`'s NNX mirrors as networks,
trained by jaxgan's own step; their torch side is the script's own iteration
(:func:`pytorch_gan_step`, :func:`wgan_gp_mnist_step`). Every case has a jaxgan side
(:data:`JAXGAN_CASES` = :data:`CASES`). Per generator iteration
:func:`train_step` does what ``jaxgan.training.step`` does: noise ``(n_critic + 1, B, latent)`` and the
penalty's ε ``(n_critic, B)`` drawn at the start; per critic update fakes from the generator in
train mode (its BatchNorm statistics update) without gradient, the critic on real, fake and
x̂ = ε·real + (1 − ε)·fake, the loss E[D(fake)] − E[D(real)] + λ E[(‖∇D(x̂)‖ − 1)²]
(+ drift E[D(real)²]), an update skipped when the loss or a gradient is not finite, clipping
after the RMSProp step; then one generator update (−E[D(G(z))], critic gradients off), the EMA.
:func:`make_step` gives a case's iteration on fixed random reals as a callable.

jaxgan's parameter counts: :func:`jaxgan_param_count` builds the case's networks as
``build.init_state`` / ``cases.prepare`` do (``case.models`` or ``build.models``) and counts the
elements of their ``nnx.Param`` leaves, i.e. of ``state.g_params`` / ``state.d_params``.

Where the torch side is not bit-for-bit jaxgan's (none changes a step's arithmetic beyond
rounding):

* Initial weights come from torch's RNG (same distributions: :func:`init_like_flax`).
* ConvTranspose kernels are flipped between the two (``lax.conv_transpose`` does not flip), and
  dense layers that feed or read feature maps see them in NCHW order; :func:`copy_from_jaxgan`
  converts. On CPU jaxgan runs DCGAN's stride-2 layers as matrix products of shifted views
  (``jaxgan.models.strided``, the same function); torch runs its own convolution kernels.
* BatchNorm's running variance is updated with the unbiased batch variance (flax: biased); no
  train step reads the running statistics. Flax's norms compute the variance as E[x²] − E[x]².
* An update skipped for non-finite values keeps the parameters and optimizer state but not the
  BatchNorm statistics (jaxgan restores those too).
* Parameters no forward pass uses (the toRGB / fromRGB of lower stages in ``prog16``/``prog32``,
  a few hundred numbers) get zero gradients and an Adam update in jaxgan; torch skips them.
* ``prog16`` is built for 16² (as ``cases.get_case("pggan16_f32")`` builds its networks); the
  main job builds all its networks for 32² and trains 16² inside them.

Where an external case's jaxgan side is not its script's (the networks are equal layer for layer,
:mod:`peers.external`; the parameter counts are equal):

* ``pytorch_gan_dcgan32``: jaxgan's ``nsgan`` (BCE on logits, non-saturating generator loss) is
  the closest objective. The script updates G first, then D on the real batch and the same fakes;
  jaxgan's step updates D on fakes of one noise batch, then G on a fresh one (one more generator
  forward pass per iteration). The script's D loss is ½(BCE(real, 1) + BCE(fake, 0)), jaxgan's
  the sum (gradients 2x; Adam's step is the same up to its ε). The discriminator's Dropout2d is
  left out of the NNX mirror (jaxgan's step passes the critic no RNG; no parameters). The
  discriminator's BatchNorm statistics from the generator update are kept by the script,
  dropped by jaxgan (no train step reads them).
* ``wgan_gp_mnist``: the same iteration as jaxgan's step; jaxgan's random reals in
  ``cases.prepare`` are in [−1, 1], the torch side's in [0, 1] (the script's data range).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

LRELU_SLOPE = 0.2
SQRT2 = math.sqrt(2.0)
MIRROR_CASES = ("toy", "mnist_mlp_gp", "mnist_mlp_clip", "dcgan64", "prog16", "prog32")
EXTERNAL_CASES = ("pytorch_gan_dcgan32", "wgan_gp_mnist")  # networks from outside jaxgan
CASES = MIRROR_CASES + EXTERNAL_CASES
JAXGAN_CASES = CASES  # the cases with a jaxgan side: all (external ones via peers/external.py)
BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/

Shape = tuple[int, ...]


# --- initialisation ------------------------------------------------------------------------


def _lecun_normal_(w: torch.Tensor, fan_in: int) -> None:
    """Flax's default kernel init: truncated normal (±2σ) with variance 1 / fan_in."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


def init_like_flax(module: nn.Module) -> nn.Module:
    """Re-initialise Linear / Conv2d / ConvTranspose2d like ``nnx.Linear`` / ``nnx.Conv`` /
    ``nnx.ConvTranspose``: lecun-normal kernels (fan_in = in·kh·kw), zero biases."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                _lecun_normal_(m.weight, m.in_features)
            elif isinstance(m, nn.ConvTranspose2d):  # weight (in, out, kh, kw)
                _lecun_normal_(m.weight, m.weight.shape[0] * m.weight[0, 0].numel())
            elif isinstance(m, nn.Conv2d):  # weight (out, in, kh, kw)
                _lecun_normal_(m.weight, m.weight[0].numel())
            else:
                continue
            if m.bias is not None:
                m.bias.zero_()
    return module


def _linear(a: int, b: int, *, nhwc_in: Shape | None = None, nhwc_out: Shape | None = None):
    """``nn.Linear(a, b)``; ``nhwc_in`` / ``nhwc_out`` (H, W, C): the layer reads a flattened /
    writes a reshaped NCHW map where jaxgan's reads / writes NHWC (used by copy_from_jaxgan)."""
    lin = nn.Linear(a, b)
    lin.nhwc_in, lin.nhwc_out = nhwc_in, nhwc_out
    return lin


# --- parameter-free operations (jaxgan.models.layers, NCHW) ---------------------------------------


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "lrelu": lrelu,
}


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x², channels) + eps)``: (B, C, ...) -> same."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """jaxgan.models.layers.minibatch_stddev in NCHW: (N, C, H, W) -> (N, C + 1, H, W). Groups of
    G = the largest divisor of N not above ``group_size``, strided (sample i in group i mod N/G)."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    y = x.float().reshape(g, n // g, c, h, w)
    y = (y - y.mean(dim=0, keepdim=True)).square().mean(dim=0)  # biased variance over the group
    s = (y + 1e-8).sqrt().mean(dim=(1, 2, 3)).repeat(g)  # (N,): sample i gets s[i % (N/G)]
    fmap = s.view(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
    return torch.cat([x, fmap], dim=1)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest 2x: (B, C, H, W) -> (B, C, 2H, 2W)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pool: (B, C, H, W) -> (B, C, H/2, W/2)."""
    return F.avg_pool2d(x, 2)


# --- MLPs (jaxgan.models.mlp) ----------------------------------------------------------------


class MLPGenerator(nn.Module):
    """z (B, latent) -> (B, *out_shape); ``out_shape`` (2,) or (C, H, W).

    Linear -> [BatchNorm for hidden layers 2..] -> act per hidden width, linear out, optional tanh.
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: Shape,
        *,
        hidden: Sequence[int] = (512, 512, 512),
        activation: str = "relu",
        batchnorm: bool = False,
        output: str = "linear",
    ) -> None:
        super().__init__()
        self.out_shape, self.act = tuple(out_shape), ACTIVATIONS[activation]
        self.tanh = output == "tanh"
        widths = [latent_dim, *hidden]
        self.layers = nn.ModuleList(
            [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        norms = [nn.BatchNorm1d(w, eps=1e-5, momentum=0.1) if batchnorm and i else None
                 for i, w in enumerate(hidden)]  # fmt: skip
        self.norms = nn.ModuleList(norms)
        nhwc = (*self.out_shape[1:], self.out_shape[0]) if len(self.out_shape) == 3 else None
        self.out = _linear(widths[-1], math.prod(self.out_shape), nhwc_out=nhwc)
        init_like_flax(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = layer(h)
            h = self.act(norm(h) if norm is not None else h)
        x = self.out(h)
        return (torch.tanh(x) if self.tanh else x).view(z.shape[0], *self.out_shape)


class MLPCritic(nn.Module):
    """(B, *in_shape) -> scores (B,); ``in_shape`` (2,) or (C, H, W). Linear -> act per width."""

    def __init__(
        self, in_shape: Shape, *, hidden: Sequence[int] = (512, 512, 512), activation: str = "relu"
    ) -> None:
        super().__init__()
        self.act = ACTIVATIONS[activation]
        nhwc = (*in_shape[1:], in_shape[0]) if len(in_shape) == 3 else None
        widths = [math.prod(in_shape), *hidden]
        self.layers = nn.ModuleList(
            [_linear(a, b, nhwc_in=nhwc if i == 0 else None)
             for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True))]
        )  # fmt: skip
        self.norms = nn.ModuleList([None for _ in hidden])  # jaxgan's norm="none"
        self.out = nn.Linear(widths[-1], 1)
        init_like_flax(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            h = self.act(layer(h))
        return self.out(h)[:, 0]


# --- DCGAN (jaxgan.models.dcgan) -------------------------------------------------------------


def _dcgan_log2(resolution: int) -> int:
    if resolution < 16 or resolution & (resolution - 1):
        raise ValueError(f"DCGAN resolution must be a power of two >= 16, got {resolution}")
    return resolution.bit_length() - 1


class DCGANGenerator(nn.Module):
    """z (B, latent) -> (B, C, R, R) in [-1, 1]: dense to 4x4xW, BN, ReLU, [ConvT 4x4 s2, BN,
    ReLU] to R/2, ConvT to C, tanh. Widths min(base·2^k, max) halving towards the output."""

    def __init__(
        self, resolution: int, channels: int, latent_dim: int = 128, *,
        base_width: int = 64, max_width: int = 512,
    ) -> None:  # fmt: skip
        super().__init__()
        n_up = _dcgan_log2(resolution) - 2
        widths = [min(base_width * 2 ** (n_up - 1 - i), max_width) for i in range(n_up)]
        self.start = widths[0]
        self.fc = _linear(latent_dim, 16 * widths[0], nhwc_out=(4, 4, widths[0]))
        self.fc_norm = nn.BatchNorm2d(widths[0], eps=1e-5, momentum=0.1)
        up = lambda a, b: nn.ConvTranspose2d(a, b, 4, stride=2, padding=1)  # noqa: E731  # = SAME
        self.ups = nn.ModuleList([up(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(b, eps=1e-5, momentum=0.1) for b in widths[1:]])
        self.to_rgb = up(widths[-1], channels)
        init_like_flax(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc_norm(self.fc(z).view(z.shape[0], self.start, 4, 4)))
        for up, norm in zip(self.ups, self.norms, strict=True):
            h = F.relu(norm(up(h)))
        return torch.tanh(self.to_rgb(h))


class DCGANCritic(nn.Module):
    """(B, C, R, R) -> scores (B,): [Conv 4x4 s2, norm (not on the first), LReLU 0.2] to 4x4,
    dense to 1. ``norm``: "none", "layer" (over C, H, W of each sample) or "batch"."""

    def __init__(
        self, resolution: int, channels: int, *, norm: str = "none",
        base_width: int = 64, max_width: int = 512,
    ) -> None:  # fmt: skip
        super().__init__()
        n_down = _dcgan_log2(resolution) - 2
        widths = [channels] + [min(base_width * 2**i, max_width) for i in range(n_down)]
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in pairs])
        self.norms = nn.ModuleList(
            [self._norm(norm, w, resolution >> (i + 1)) if i else None
             for i, w in enumerate(widths[1:])]
        )  # fmt: skip
        self.out = _linear(16 * widths[-1], 1, nhwc_in=(4, 4, widths[-1]))
        init_like_flax(self)

    @staticmethod
    def _norm(kind: str, width: int, size: int) -> nn.Module | None:
        if kind == "layer":
            return nn.LayerNorm([width, size, size], eps=1e-6)
        return nn.BatchNorm2d(width, eps=1e-5, momentum=0.1) if kind == "batch" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = conv(h)
            h = lrelu(norm(h) if norm is not None else h)
        return self.out(h.flatten(1))[:, 0]


# --- progressive networks (jaxgan.models.layers, jaxgan.models.progressive) ------------------------


class EqualizedLinear(nn.Module):
    """``x (w · gain/√in)ᵀ + b``, w ~ N(0, 1) (out, in), b = 0: (..., in) -> (..., out)."""

    def __init__(
        self, in_features: int, out_features: int, *, gain: float = SQRT2, bias: bool = True,
        nhwc_in: Shape | None = None, nhwc_out: Shape | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.scale = gain / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.nhwc_in, self.nhwc_out = nhwc_in, nhwc_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """Stride-1 'SAME' conv with w ~ N(0, 1) (out, in, k, k) scaled by gain/√(in·k²), bias 0:
    (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_features: int, out_features: int, kernel: int, *, gain: float = SQRT2):
        super().__init__()
        self.scale, self.pad = gain / math.sqrt(in_features * kernel * kernel), kernel // 2
        self.weight = nn.Parameter(torch.randn(out_features, in_features, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class ToRGB(nn.Module):
    """1x1 equalized conv, gain 1, linear: (B, in, H, W) -> (B, channels, H, W)."""

    def __init__(self, in_features: int, channels: int) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(in_features, channels, 1, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FromRGB(nn.Module):
    """1x1 equalized conv (gain √2) + LReLU 0.2: (B, channels, H, W) -> (B, out, H, W)."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(channels, out_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(self.conv(x))


class GBlock4(nn.Module):
    """(B, latent) -> (B, f, 4, 4): dense (gain √2/4, no bias), + per-map bias, LReLU, pixel
    norm, conv3, LReLU, pixel norm."""

    def __init__(self, latent_dim: int, features: int) -> None:
        super().__init__()
        self.features = features
        self.dense = EqualizedLinear(
            latent_dim, 16 * features, gain=SQRT2 / 4, bias=False, nhwc_out=(4, 4, features)
        )
        self.bias = nn.Parameter(torch.zeros(features))
        self.conv = EqualizedConv2d(features, features, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(z.shape[0], self.features, 4, 4)
        h = pixel_norm(lrelu(h + self.bias.view(1, -1, 1, 1)))
        return pixel_norm(lrelu(self.conv(h)))


class GBlockUp(nn.Module):
    """(B, in, H, W) -> (B, f, 2H, 2W): upsample, [conv3, LReLU, PN] x 2."""

    def __init__(self, in_features: int, features: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_features, features, 3)
        self.conv1 = EqualizedConv2d(features, features, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = pixel_norm(lrelu(self.conv0(upsample2x(h))))
        return pixel_norm(lrelu(self.conv1(h)))


class DBlockDown(nn.Module):
    """(B, in, H, W) -> (B, f, H/2, W/2): conv3 in->in, LReLU, conv3 in->f, LReLU, avg-pool 2."""

    def __init__(self, in_features: int, features: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_features, in_features, 3)
        self.conv1 = EqualizedConv2d(in_features, features, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return downsample2x(lrelu(self.conv1(lrelu(self.conv0(h)))))


class DBlock4(nn.Module):
    """(B, in, 4, 4) -> (B,): mbstd, conv3, LReLU, dense, LReLU, dense 1 (gain 1)."""

    def __init__(self, in_features: int, features: int, dense_features: int, mbstd: int) -> None:
        super().__init__()
        self.mbstd = mbstd
        self.conv = EqualizedConv2d(in_features + (mbstd > 1), features, 3)
        self.dense0 = EqualizedLinear(16 * features, dense_features, nhwc_in=(4, 4, features))
        self.dense1 = EqualizedLinear(dense_features, 1, gain=1.0)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.mbstd > 1:
            h = minibatch_stddev(h, self.mbstd)
        h = lrelu(self.dense0(lrelu(self.conv(h)).flatten(1)))
        return self.dense1(h)[:, 0]


def nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    """Feature maps at ``stage``: min(fmap_base / 2^stage, fmap_max), at least 1."""
    return max(1, min(fmap_base // 2**stage, fmap_max))


class ProgressiveGenerator(nn.Module):
    """z (B, latent) -> (B, C, stage, stage), the stable network at ``stage`` (default: the final
    ``resolution``); every block and toRGB up to ``resolution`` exists (as in jaxgan)."""

    def __init__(
        self, resolution: int, *, latent_dim: int = 512, channels: int = 3,
        fmap_base: int = 8192, fmap_max: int = 512, stage: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.stage = stage or resolution
        width = lambda r: nf(r - 1, fmap_base, fmap_max)  # noqa: E731
        log2 = resolution.bit_length() - 1
        blocks, to_rgb = {}, {}
        for r in range(2, log2 + 1):
            first = r == 2
            block = GBlock4(latent_dim, width(r)) if first else GBlockUp(width(r - 1), width(r))
            blocks[f"res{2**r}"] = block
            to_rgb[f"res{2**r}"] = ToRGB(width(r), channels)
        self.blocks, self.to_rgb = nn.ModuleDict(blocks), nn.ModuleDict(to_rgb)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks["res4"](pixel_norm(z))
        r = 8
        while r <= self.stage:
            h, r = self.blocks[f"res{r}"](h), 2 * r
        return self.to_rgb[f"res{self.stage}"](h)


class ProgressiveCritic(nn.Module):
    """(B, C, stage, stage) -> scores (B,): fromRGB at ``stage``, the blocks down to 4x4, the
    final block (mbstd when ``mbstd_group_size`` > 1). Every fromRGB up to ``resolution`` exists."""

    def __init__(
        self, resolution: int, *, channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512,
        mbstd_group_size: int = 4, stage: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.stage = stage or resolution
        width = lambda s: nf(s, fmap_base, fmap_max)  # noqa: E731
        log2 = resolution.bit_length() - 1
        from_rgb, blocks = {}, {}
        for r in range(log2, 1, -1):
            from_rgb[f"res{2**r}"] = FromRGB(channels, width(r - 1))
            if r >= 3:
                blocks[f"res{2**r}"] = DBlockDown(width(r - 1), width(r - 2))
        self.from_rgb, self.blocks = nn.ModuleDict(from_rgb), nn.ModuleDict(blocks)
        self.final = DBlock4(width(1), width(1), width(0), mbstd_group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, r = self.from_rgb[f"res{self.stage}"](x), self.stage
        while r >= 8:
            h, r = self.blocks[f"res{r}"](h), r // 2
        return self.final(h)


# --- external reference networks (re-written from reading the repositories) ------------------


class PyTorchGANDCGANGenerator(nn.Module):
    """PyTorch-GAN ``dcgan.py`` G: z (B, latent) -> (B, C, S, S). Linear to 128·(S/4)², BN,
    [nearest 2x, conv3, BN(eps 0.8), LReLU] x 2 (128, 64 maps), conv3 to C, tanh."""

    def __init__(self, img_size: int = 32, channels: int = 1, latent_dim: int = 100) -> None:
        super().__init__()
        self.init_size = img_size // 4
        s = self.init_size
        self.l1 = _linear(latent_dim, 128 * s**2, nhwc_out=(s, s, 128))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, padding=1),
            nn.BatchNorm2d(128, 0.8),  # the repository passes 0.8 as eps
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, padding=1),
            nn.BatchNorm2d(64, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, padding=1),
            nn.Tanh(),
        )
        self.apply(_dcgan_normal_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_blocks(self.l1(z).view(z.shape[0], 128, self.init_size, self.init_size))


class PyTorchGANDCGANDiscriminator(nn.Module):
    """PyTorch-GAN ``dcgan.py`` D: (B, C, S, S) -> probabilities (B, 1). [conv3 s2, LReLU,
    Dropout2d 0.25, BN(eps 0.8) but on the first] x 4 (16, 32, 64, 128 maps), linear, sigmoid."""

    def __init__(self, img_size: int = 32, channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b, bn in ((channels, 16, False), (16, 32, True), (32, 64, True), (64, 128, True)):
            layers += [
                nn.Conv2d(a, b, 3, 2, 1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout2d(0.25),
            ]
            layers += [nn.BatchNorm2d(b, 0.8)] if bn else []
        self.model = nn.Sequential(*layers)
        s = img_size // 16
        self.adv_layer = nn.Sequential(_linear(128 * s**2, 1, nhwc_in=(s, s, 128)), nn.Sigmoid())
        self.apply(_dcgan_normal_init)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.adv_layer(self.model(img).flatten(1))


def _dcgan_normal_init(m: nn.Module) -> None:
    """PyTorch-GAN's init: conv weights N(0, 0.02), BatchNorm2d weights N(1, 0.02), biases 0."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class WGANGPMNISTGenerator(nn.Module):
    """caogang/wgan-gp ``gan_mnist.py`` G: z (B, 128) -> (B, 784) in (0, 1). Linear to 4·4·4D,
    ReLU, ConvT5 4D->2D (8x8, cropped to 7x7), ReLU, ConvT5 2D->D (11x11), ReLU, ConvT8 s2 -> 28x28,
    sigmoid."""

    def __init__(self, dim: int = 64, latent_dim: int = 128) -> None:
        super().__init__()
        self.dim = dim
        lin = _linear(latent_dim, 64 * dim, nhwc_out=(4, 4, 4 * dim))
        self.preprocess = nn.Sequential(lin, nn.ReLU(True))
        self.block1 = nn.Sequential(nn.ConvTranspose2d(4 * dim, 2 * dim, 5), nn.ReLU(True))
        self.block2 = nn.Sequential(nn.ConvTranspose2d(2 * dim, dim, 5), nn.ReLU(True))
        self.deconv_out = nn.ConvTranspose2d(dim, 1, 8, stride=2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.preprocess(z).view(-1, 4 * self.dim, 4, 4)
        h = self.block2(self.block1(h)[:, :, :7, :7])
        return torch.sigmoid(self.deconv_out(h)).view(-1, 784)


class WGANGPMNISTCritic(nn.Module):
    """caogang/wgan-gp ``gan_mnist.py`` D: (B, 784) -> (B,). [conv5 s2 p2, ReLU] x 3
    (D, 2D, 4D maps: 28 -> 14 -> 7 -> 4), linear 4·4·4D -> 1."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, dim, 5, stride=2, padding=2),
            nn.ReLU(True),
            nn.Conv2d(dim, 2 * dim, 5, stride=2, padding=2),
            nn.ReLU(True),
            nn.Conv2d(2 * dim, 4 * dim, 5, stride=2, padding=2),
            nn.ReLU(True),
        )
        self.output = _linear(64 * dim, 1, nhwc_in=(4, 4, 4 * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.main(x.view(-1, 1, 28, 28)).flatten(1)).view(-1)


# --- optimizers ------------------------------------------------------------------------------


class RMSpropEpsInSqrt(torch.optim.Optimizer):
    """optax.rmsprop(lr, decay, eps) (jaxgan's RMSProp): ν ← decay·ν + (1 − decay)·g²,
    p ← p − lr·g / √(ν + eps). torch.optim.RMSprop puts eps outside the square root."""

    def __init__(self, params, lr: float, decay: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            gs = [p.grad for p in ps]
            nus = [self.state[p].setdefault("nu", torch.zeros_like(p)) for p in ps]
            torch._foreach_mul_(nus, group["decay"])
            torch._foreach_addcmul_(nus, gs, gs, value=1 - group["decay"])
            denom = torch._foreach_sqrt(torch._foreach_add(nus, group["eps"]))
            torch._foreach_addcdiv_(ps, gs, denom, value=-group["lr"])


def _adam(lr: float, betas: tuple[float, float]) -> Callable[[Any], torch.optim.Optimizer]:
    return lambda ps: torch.optim.Adam(ps, lr=lr, betas=betas, eps=1e-8, foreach=True)


def _rmsprop(lr: float) -> Callable[[Any], torch.optim.Optimizer]:
    return lambda ps: RMSpropEpsInSqrt(ps, lr=lr, decay=0.9, eps=1e-8)


# --- cases -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
    """A case: networks, sample shape (torch layout), batch and the objective's settings."""

    name: str
    models: Callable[[], tuple[nn.Module, nn.Module]]
    sample: Shape  # one real sample, torch layout: (2,), (C, H, W) or (784,)
    latent_dim: int
    batch: int
    n_critic: int
    optimizer: Callable[[Any], torch.optim.Optimizer]  # the same settings for G and D
    gp_weight: float = 0.0
    drift: float = 0.0
    clip: float | None = None
    ema: float = 0.0
    real_range: tuple[float, float] = (-1.0, 1.0)
    kind: str = "jaxgan"  # the step: jaxgan, pytorch_gan, wgan_gp_mnist
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # as jaxgan names them


def _mnist_mlps() -> tuple[nn.Module, nn.Module]:
    g = MLPGenerator(100, (1, 28, 28), hidden=(128, 256, 512, 1024), activation="lrelu",
                     batchnorm=True, output="tanh")  # fmt: skip
    return g, MLPCritic((1, 28, 28), hidden=(512, 256), activation="lrelu")


def _progressive(res: int) -> tuple[nn.Module, nn.Module]:
    kw = {"channels": 1, "fmap_base": 256, "fmap_max": 64}
    return ProgressiveGenerator(res, latent_dim=64, **kw), ProgressiveCritic(res, **kw)


def get_spec(name: str) -> Spec:
    """The case called ``name`` (one of :data:`CASES`)."""
    if name == "toy":
        s = {"lr": 1e-4, "betas": (0.5, 0.9)}
        return Spec(name, lambda: (MLPGenerator(2, (2,)), MLPCritic((2,))), (2,), 2, 256, 5,
                    _adam(**s), gp_weight=0.1, settings=s)  # fmt: skip
    if name == "mnist_mlp_gp":
        s = {"lr": 2e-4, "betas": (0.5, 0.999)}
        return Spec(name, _mnist_mlps, (1, 28, 28), 100, 64, 5, _adam(**s), gp_weight=10.0,
                    settings=s)  # fmt: skip
    if name == "mnist_mlp_clip":
        return Spec(name, _mnist_mlps, (1, 28, 28), 100, 64, 5, _rmsprop(5e-5), clip=0.01,
                    settings={"lr": 5e-5})  # fmt: skip
    if name == "dcgan64":
        s = {"lr": 1e-4, "betas": (0.0, 0.9)}
        models = lambda: (DCGANGenerator(64, 3, 128, base_width=64),  # noqa: E731
                          DCGANCritic(64, 3, norm="layer", base_width=64))  # fmt: skip
        return Spec(name, models, (3, 64, 64), 128, 64, 5, _adam(**s), gp_weight=10.0, settings=s)
    if name in ("prog16", "prog32"):
        res, s = int(name[4:]), {"lr": 5e-3, "betas": (0.0, 0.99)}
        return Spec(name, lambda: _progressive(res), (1, res, res), 64, 32, 1, _adam(**s),
                    gp_weight=10.0, drift=0.001, ema=0.99, settings=s)  # fmt: skip
    if name == "pytorch_gan_dcgan32":
        models = lambda: (PyTorchGANDCGANGenerator(), PyTorchGANDCGANDiscriminator())  # noqa: E731
        adam = lambda ps: torch.optim.Adam(ps, lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
        return Spec(name, models, (1, 32, 32), 100, 64, 1, adam, kind="pytorch_gan",
                    settings={"lr": 2e-4, "betas": (0.5, 0.999)})  # fmt: skip
    if name == "wgan_gp_mnist":
        models = lambda: (WGANGPMNISTGenerator(), WGANGPMNISTCritic())  # noqa: E731
        adam = lambda ps: torch.optim.Adam(ps, lr=1e-4, betas=(0.5, 0.9))  # noqa: E731
        return Spec(name, models, (784,), 128, 50, 5, adam, gp_weight=10.0, real_range=(0.0, 1.0),
                    kind="wgan_gp_mnist", settings={"lr": 1e-4, "betas": (0.5, 0.9)})  # fmt: skip
    raise ValueError(f"unknown case {name!r}; cases: {', '.join(CASES)}")


def count(module: nn.Module) -> int:
    """Trainable parameters (no BatchNorm statistics)."""
    return sum(p.numel() for p in module.parameters())


def param_count(case: str) -> tuple[int, int]:
    """(generator, critic) parameters of the torch networks of ``case``."""
    g, d = get_spec(case).models()
    return count(g), count(d)


@dataclasses.dataclass
class Peer:
    """A case's networks and optimizers, ready to step (both networks in train mode)."""

    spec: Spec
    g: nn.Module
    d: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: list[torch.Tensor]  # EMA of the generator's parameters (empty: off)


def make_peer(case: str, models: tuple[nn.Module, nn.Module] | None = None) -> Peer:
    """The networks (``models``, or freshly built) and optimizers of ``case``."""
    spec = get_spec(case)
    g, d = models if models is not None else spec.models()
    g.train()
    d.train()
    ema = [p.detach().clone() for p in g.parameters()] if spec.ema else []
    return Peer(spec, g, d, spec.optimizer(g.parameters()), spec.optimizer(d.parameters()), ema)


# --- train steps -----------------------------------------------------------------------------


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
    target: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[(‖∇D(x̂)‖₂ − target)²], norms (B,)) at x̂ = ε·real + (1 − ε)·fake with ε (B,) one per
    sample; the norm over every non-batch axis, differentiable (``create_graph``)."""
    e = eps.view(-1, *(1,) * (real.dim() - 1))
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return (norms - target).square().mean(), norms


def _finite(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> bool:
    """jaxgan's guard: the loss and every gradient finite (one reduction per leaf)."""
    grads = [p.grad for p in params if p.grad is not None]
    checks = [torch.isfinite(loss)] + [torch.isfinite(g).all() for g in grads]
    return bool(torch.stack(checks).all())


def critic_update(peer: Peer, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None):
    """One critic update of jaxgan's step; returns its metrics (0-d tensors)."""
    s, d = peer.spec, peer.d
    with torch.no_grad():
        fake = peer.g(z)  # train mode: its BatchNorm statistics update, as jaxgan's g_rest
    s_real, s_fake = d(real), d(fake)
    loss = s_fake.mean() - s_real.mean()
    aux = {"critic_loss": loss.detach(), "w_estimate": -loss.detach(),
           "real_score": s_real.detach().mean(), "fake_score": s_fake.detach().mean()}  # fmt: skip
    if s.gp_weight > 0:
        gp, norms = gradient_penalty(d, real, fake, eps)
        loss = loss + s.gp_weight * gp
        norms = norms.detach()
        aux.update(gp=gp.detach(), grad_norm=norms.mean(), grad_norm_max=norms.max())
    if s.drift > 0:
        drift = s_real.square().mean()
        loss = loss + s.drift * drift
        aux["drift"] = drift.detach()
    aux["critic_total"] = loss.detach()
    _apply(peer.opt_d, loss, list(d.parameters()), aux, clip=s.clip)
    return aux


def generator_update(peer: Peer, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """jaxgan's generator update: −E[D(G(z))], gradients for G only; then the EMA."""
    peer.d.requires_grad_(False)
    try:
        loss = -peer.d(peer.g(z)).mean()
        aux = {"generator_loss": loss.detach()}
        params = list(peer.g.parameters())
        _apply(peer.opt_g, loss, params, aux)
    finally:
        peer.d.requires_grad_(True)
    if peer.ema:
        with torch.no_grad():
            torch._foreach_lerp_(peer.ema, params, 1.0 - peer.spec.ema)
    return aux


def _apply(opt, loss, params, aux, *, clip: float | None = None) -> None:
    """Backward and step unless non-finite (``aux["skipped"]``); weight clipping after the step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    ok = _finite(loss, params)
    if ok:
        opt.step()
        if clip is not None:
            with torch.no_grad():
                torch._foreach_clamp_min_(params, -clip)
                torch._foreach_clamp_max_(params, clip)
    aux["skipped"] = torch.tensor(float(not ok))


def train_step(
    peer: Peer,
    reals: torch.Tensor,
    zs: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One generator iteration: ``reals`` (n_critic, B, *sample); ``zs`` (n_critic + 1, B,
    latent) and ``eps`` (n_critic, B) drawn here when not given. Returns mean metrics."""
    s = peer.spec
    n, b = reals.shape[:2]
    if s.kind != "jaxgan":
        return EXTERNAL_STEPS[s.kind](peer, reals, zs, eps)
    zs = torch.randn(n + 1, b, s.latent_dim) if zs is None else zs
    eps = torch.rand(n, b) if eps is None and s.gp_weight > 0 else eps
    auxes = [
        critic_update(peer, reals[i], zs[i], None if eps is None else eps[i]) for i in range(n)
    ]
    metrics = {k: torch.stack([a[k] for a in auxes]).mean() for k in auxes[0]}
    skipped = metrics.pop("skipped") * n
    g_aux = generator_update(peer, zs[n])
    metrics.update(generator_loss=g_aux["generator_loss"], skipped=skipped + g_aux["skipped"])
    return metrics


def pytorch_gan_step(peer: Peer, reals: torch.Tensor, zs=None, eps=None) -> dict[str, torch.Tensor]:
    """PyTorch-GAN ``dcgan.py``'s iteration: G update (BCE against 1; the backward also fills the
    discriminator's gradients, which its zero_grad then drops), then D update on the real batch
    and the same fakes detached, loss ½(BCE(real, 1) + BCE(fake, 0)). ``reals`` (1, B, C, S, S)."""
    del eps
    real, (g, d) = reals[0], (peer.g, peer.d)
    b = real.shape[0]
    z = torch.randn(b, peer.spec.latent_dim) if zs is None else zs[0]
    valid, fake = torch.ones(b, 1), torch.zeros(b, 1)
    peer.opt_g.zero_grad()
    gen = g(z)
    g_loss = F.binary_cross_entropy(d(gen), valid)
    g_loss.backward()
    peer.opt_g.step()
    peer.opt_d.zero_grad()
    real_loss = F.binary_cross_entropy(d(real), valid)
    d_loss = 0.5 * (real_loss + F.binary_cross_entropy(d(gen.detach()), fake))
    d_loss.backward()
    peer.opt_d.step()
    return {"critic_total": d_loss.detach(), "generator_loss": g_loss.detach()}


def wgan_gp_mnist_step(
    peer: Peer, reals: torch.Tensor, zs=None, eps=None
) -> dict[str, torch.Tensor]:
    """caogang/wgan-gp ``gan_mnist.py``'s iteration: per critic iteration, zero the gradients,
    backward −E[D(real)], fakes without gradient, backward E[D(fake)], backward λ·GP (ε per
    sample, norm over the 784 pixels), Adam step; then D's gradients off and a G update on
    −E[D(G(z))]. ``reals`` (5, B, 784)."""
    s, g, d = peer.spec, peer.g, peer.d
    n, b = reals.shape[:2]
    zs = torch.randn(n + 1, b, s.latent_dim) if zs is None else zs
    eps = torch.rand(n, b) if eps is None else eps
    d.requires_grad_(True)
    costs = []
    for i in range(n):
        d.zero_grad()
        d_real = d(reals[i]).mean()
        d_real.backward(torch.tensor(-1.0))
        with torch.no_grad():
            fake = g(zs[i])
        d_fake = d(fake).mean()
        d_fake.backward(torch.tensor(1.0))
        gp = s.gp_weight * gradient_penalty(d, reals[i], fake, eps[i])[0]
        gp.backward()
        costs.append((d_fake - d_real + gp).detach())
        peer.opt_d.step()
    d.requires_grad_(False)
    g.zero_grad()
    g_cost = -d(g(zs[n])).mean()
    g_cost.backward()
    peer.opt_g.step()
    d.requires_grad_(True)
    return {"critic_total": torch.stack(costs).mean(), "generator_loss": g_cost.detach()}


EXTERNAL_STEPS: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "pytorch_gan": pytorch_gan_step,
    "wgan_gp_mnist": wgan_gp_mnist_step,
}


def fixed_reals(spec: Spec, batch: int | None = None, seed: int = 0) -> torch.Tensor:
    """(n_critic, B, *sample) uniform in the case's data range, from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = spec.real_range
    x = torch.rand(spec.n_critic, batch or spec.batch, *spec.sample, generator=gen)
    return lo + (hi - lo) * x


@dataclasses.dataclass
class Stepper:
    """``stepper()`` runs one generator iteration of ``peer`` on the fixed ``reals``."""

    peer: Peer
    reals: torch.Tensor

    def __call__(self) -> dict[str, torch.Tensor]:
        return train_step(self.peer, self.reals)


def make_step(
    case_name: str, threads: int = 2, *, batch: int | None = None, seed: int = 0
) -> Stepper:
    """A callable running one generator iteration of ``case_name`` on fixed random reals of the
    case's shapes (``batch`` overrides its batch); sets ``torch.set_num_threads(threads)``.

    On a host whose cores are busy with other work, OpenMP threads wait for each other: a tiny
    ``dcgan64`` step took 17x longer with 2 threads than with 1 on a shared 2-core machine."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    peer = make_peer(case_name)
    return Stepper(peer, fixed_reals(peer.spec, batch, seed))


# --- the jaxgan side (imports JAX) ----------------------------------------------------------


def _cases_module():
    """``benchmarks/cases.py``, imported with ``benchmarks/`` on ``sys.path`` (``cases`` imports
    its sibling ``measure``) and the path restored."""
    sys.path.insert(0, BENCH_DIR)
    try:
        return importlib.import_module("cases")
    finally:
        sys.path.remove(BENCH_DIR)


def _external_module():
    """:mod:`peers.external` (imports JAX and Flax)."""
    return importlib.import_module(".external", __package__)


def jaxgan_case(name: str):
    """The ``cases.Case`` of a torch case's jaxgan side: ``cases.get_case(name)``; for ``prog16``
    / ``prog32`` the ``main`` preset with ``--stage_schedule=4,...,R`` (networks built for R), its
    mnist5k shape (R, R, 1) and stable phase at R; for an external case the ``dcgan-mnist5k``
    preset with the script's objective, optimizer, batch and latent size, networks from
    :mod:`peers.external` and the script's sample shape (32, 32, 1), or (784,) as ``gan_mnist.py``
    feeds its networks."""
    cases = _cases_module()
    if name not in JAXGAN_CASES:
        raise ValueError(f"{name!r} has no jaxgan side; those are {', '.join(JAXGAN_CASES)}")
    if name in EXTERNAL_CASES:
        ext = _external_module()
        if name == "pytorch_gan_dcgan32":  # nsgan: BCE on logits, the closest jaxgan objective
            o = {"loss": "nsgan", "n_critic": 1, "batch_size": 64, "latent_dim": 100,
                 "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "ema": 0.0}  # fmt: skip
            return cases.Case(name, "external", "dcgan-mnist5k", o, (32, 32, 1), ("mnist5k", 32),
                              models=ext.pytorch_gan_dcgan32_models,
                              models_doc=ext.PYTORCH_GAN_DOC)  # fmt: skip
        o = {"loss": "wgan-gp", "gp_weight": 10.0, "n_critic": 5, "batch_size": 50,
             "latent_dim": 128, "lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.5, 0.9), "ema": 0.0}  # fmt: skip
        return cases.Case(name, "external", "dcgan-mnist5k", o, (784,), ("mnist5k", None),
                          models=ext.wgan_gp_mnist_models, models_doc=ext.WGAN_GP_MNIST_DOC)  # fmt: skip
    if not name.startswith("prog"):
        return cases.get_case(name)
    res = int(name[4:])
    o = {"stage_schedule": tuple(2**k for k in range(2, res.bit_length()))}
    return cases.Case(name, "prog", "main", o, (res, res, 1), ("mnist5k", res), resolution=res)


def jaxgan_models(name: str, **kw):
    """(generator, critic) nnx modules of the case, as ``build.init_state`` / ``cases.prepare``
    build them (``case.models(config, **kw)`` or ``build.models`` with the config's seed)."""
    from jaxgan.training import build

    case = jaxgan_case(name)
    c = case.config
    return case.models(c, **kw) if case.models else build.models(c, case.shape, c.output.seed)


def jaxgan_param_count(name: str) -> tuple[int, int]:
    """(generator, critic) parameters of jaxgan's networks: the elements of the ``nnx.Param``
    leaves, i.e. of ``state.g_params`` / ``state.d_params`` from ``cases.prepare`` (counted on
    ``nnx.eval_shape``'s abstract networks)."""
    import jax
    from flax import nnx

    kw = {"cpu": False} if name in EXTERNAL_CASES else {}  # the same parameters in any form
    models = nnx.eval_shape(
        lambda: jaxgan_models(name, **kw)
    )  # shapes only: nothing is initialised
    g, d = (sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param))) for m in models)
    return g, d


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)
_NORM_LEAVES = {"weight": "scale", "running_mean": "mean", "running_var": "var"}


def _jax_leaf(owner: nn.Module, leaf: str) -> str:
    """jaxgan's name of torch's ``owner.leaf``: kernel, scale, mean, var or the same."""
    if isinstance(owner, _NORMS):
        return _NORM_LEAVES.get(leaf, leaf)
    return "kernel" if leaf == "weight" else leaf


def _torch_layout(owner: nn.Module, leaf: str, a):
    """A jaxgan array in the layout of torch's ``owner.leaf`` (NumPy in, NumPy out)."""
    if isinstance(owner, nn.LayerNorm) and len(owner.normalized_shape) == 3:
        c, h, w = owner.normalized_shape
        return a.reshape(h, w, c).transpose(2, 0, 1)  # (H·W·C,) flattened NHWC -> (C, H, W)
    if isinstance(owner, _NORMS) or leaf not in ("weight", "bias"):
        return a
    if isinstance(owner, (nn.Linear, EqualizedLinear)):
        return _linear_layout(a, getattr(owner, "nhwc_in", None), getattr(owner, "nhwc_out", None))
    if leaf == "bias":
        return a
    if isinstance(owner, nn.ConvTranspose2d):  # (kh, kw, in, out), unflipped -> (in, out, kh, kw)
        return a[::-1, ::-1].transpose(2, 3, 0, 1)
    return a.transpose(3, 2, 0, 1)  # conv (kh, kw, in, out) -> (out, in, kh, kw)


def _linear_layout(a, nhwc_in: Shape | None, nhwc_out: Shape | None):
    """A dense kernel (in, out) -> torch's (out, in), or a bias (out,); inputs / outputs that are
    NHWC maps in jaxgan, ``nhwc_in`` / ``nhwc_out`` = (H, W, C), reordered to (C, H, W)."""
    if a.ndim == 1:
        return a.reshape(nhwc_out).transpose(2, 0, 1).reshape(-1) if nhwc_out else a
    if nhwc_in:
        a = a.reshape(*nhwc_in, -1).transpose(2, 0, 1, 3).reshape(a.shape)
    if nhwc_out:
        a = a.reshape(a.shape[0], *nhwc_out).transpose(0, 3, 1, 2).reshape(a.shape)
    return a.T


def copy_from_jaxgan(module: nn.Module, nnx_module) -> None:
    """Load an nnx module's parameters and batch statistics into its torch mirror (same attribute
    names; layouts converted). Every jaxgan variable must be used exactly once."""
    import numpy as np
    from flax import nnx

    variables = nnx.to_flat_state(nnx.state(nnx_module))
    flat = {tuple(map(str, path)): np.asarray(v[...]) for path, v in variables}
    used = set()
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            *where, leaf = name.split(".")
            if leaf == "num_batches_tracked":
                continue
            owner = module.get_submodule(".".join(where))
            key = (*where, _jax_leaf(owner, leaf))
            value = np.array(_torch_layout(owner, leaf, flat[key]), dtype=np.float32)
            if value.shape != tuple(t.shape):
                raise ValueError(
                    f"{name}: jaxgan's {key} is {value.shape}, torch's {tuple(t.shape)}"
                )
            t.copy_(torch.from_numpy(value))
            used.add(key)
    if set(flat) - used:
        raise ValueError(
            f"jaxgan variables without a torch counterpart: {sorted(set(flat) - used)}"
        )


if __name__ == "__main__":
    for n in CASES:
        print(n, *param_count(n))
