"""Convolutions of NHWC arrays computed in the forms XLA:CPU runs fastest, each the same function
with the same parameters as the ``lax`` convolution a Flax layer calls.

XLA:CPU has no fast kernel for convolutions with lhs dilation (a transposed convolution's forward,
a strided one's input gradient); it runs them, the second derivatives a WGAN-GP critic takes
through strided ones, and small-map stride-1 convolutions with wide kernels far below its matmul
speed. The forms here use pads, slices and reshapes around matmuls or stride-1 convolutions:

* :func:`conv_im2col`: a (strided) convolution as one matmul of the kh·kw shifted views;
* :func:`conv_stride2`: a stride-2 convolution as one matmul over space-to-depth blocks (its
  double derivative, which a gradient penalty takes, is again matmuls);
* :func:`conv_transpose_col2im`: a transposed convolution as every input pixel times every tap,
  each tap's map then added at its place (what PyTorch does);
* :func:`conv_transpose_stride2`: a stride-2 transposed convolution as one stride-1 convolution
  over the four output phases (sub-pixel);
* :func:`upsample_conv`: a convolution of a nearest-2x-upsampled input as the same four-phase
  convolution at the input's resolution (a 3x3 kernel: 4/9 of the multiply-adds).

Kernels keep the Flax layouts: ``(kh, kw, C_in, C_out)``, unflipped as ``lax.conv_transpose``
uses it. Which form a layer runs is chosen in :mod:`jaxgan.models.cpu`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Padding = str | Sequence[tuple[int, int]]
DN = ("NHWC", "HWIO", "NHWC")


def conv_im2col(x: jax.Array, kernel: jax.Array, pads: Any, stride: int = 1) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, (stride, stride), pads)`` as one matmul: (B, H, W, C_in),
    kernel (kh, kw, C_in, C_out), pads ((lo, hi), (lo, hi)) -> (B, H', W', C_out). The kh·kw
    (strided) views of the padded input side by side, times the kernel as one matrix."""
    (lo_h, hi_h), (lo_w, hi_w) = pads
    kh, kw, c, c_out = kernel.shape
    xp = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0), (0, 0, 0)])  # fmt: skip
    b, hp, wp, _ = xp.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    views = [xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
             for i in range(kh) for j in range(kw)]  # fmt: skip
    y = jnp.concatenate(views, -1).reshape(b * ho * wo, kh * kw * c) @ kernel.reshape(kh * kw * c, c_out)  # fmt: skip
    return y.reshape(b, ho, wo, c_out)


def conv_transpose_col2im(x: jax.Array, kernel: jax.Array, pads: Any, stride: int) -> jax.Array:
    """``lax.conv_transpose(x, kernel, (stride, stride), pads)`` as one matmul and a scatter-add:
    (B, H, W, C_in), kernel (kh, kw, C_in, C_out) -> (B, H', W', C_out).

    Input pixel i meets kernel tap a at output o = stride·i + lo - a (``pads``: the (lo, hi) the
    transposed convolution gives its dilated input): every pixel times every tap is one
    ``(B·H·W, C_in) @ (C_in, kh·kw·C_out)`` matmul (no multiplies by the zeros of the dilated,
    padded input), and each tap's map is placed on the output by one (interior-)padding and added.
    """
    (lo_h, hi_h), (lo_w, hi_w) = pads
    b, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    ho, wo = (
        stride * (h - 1) + 1 + lo_h + hi_h - kh + 1,
        stride * (w - 1) + 1 + lo_w + hi_w - kw + 1,
    )
    z = x.reshape(b * h * w, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * c_out)
    z = z.reshape(b, h, w, kh, kw, c_out)
    span_h, span_w = stride * (h - 1) + 1, stride * (w - 1) + 1
    y = None
    for a_h in range(kh):
        for a_w in range(kw):
            top, left = lo_h - a_h, lo_w - a_w
            pad = [(0, 0, 0), (top, ho - span_h - top, stride - 1), (left, wo - span_w - left, stride - 1), (0, 0, 0)]  # fmt: skip
            tap = jax.lax.pad(z[:, :, :, a_h, a_w], jnp.zeros((), z.dtype), pad)
            y = tap if y is None else y + tap
    return y


def conv_stride2(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, padding: Padding = "SAME") -> jax.Array:  # fmt: skip
    """``lax.conv_general_dilated(x, kernel, (2, 2), padding)`` (+ bias): (B, H, W, C_in) -> (B, H', W', C_out).

    Output pixel i reads padded rows 2i .. 2i + k - 1. With the kernel zero-padded to an even size
    2P and the padded input folded into 2x2 blocks (block m, offset q: row 2m + q), kernel row
    a = 2p + q meets block i + p: a P x P stride-1 window over 4·C_in channels, computed as one
    matmul of the P² shifted block views with the kernel reshaped to (P²·4·C_in, C_out).
    """
    b, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    (lo_h, hi_h), (lo_w, hi_w) = _conv_pads(padding, (h, w), (kh, kw))
    ho, wo = (h + lo_h + hi_h - kh) // 2 + 1, (w + lo_w + hi_w - kw) // 2 + 1
    ph, pw = (kh + 1) // 2, (kw + 1) // 2
    need_h, need_w = 2 * (ho + ph - 1), 2 * (wo + pw - 1)  # rows the blocks cover, even
    xp = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (lo_h, need_h - h - lo_h, 0), (lo_w, need_w - w - lo_w, 0), (0, 0, 0)])  # fmt: skip
    s = xp.reshape(b, need_h // 2, 2, need_w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    s = s.reshape(b, need_h // 2, need_w // 2, 4 * c)
    k = jnp.pad(kernel, ((0, 2 * ph - kh), (0, 2 * pw - kw), (0, 0), (0, 0)))
    # k[a_h, a_w] with a = 2p + q  ->  k2[(p_h, p_w, q_h, q_w, c)]
    k2 = (
        k.reshape(ph, 2, pw, 2, c, c_out)
        .transpose(0, 2, 1, 3, 4, 5)
        .reshape(ph * pw * 4 * c, c_out)
    )
    views = [s[:, p_h : p_h + ho, p_w : p_w + wo] for p_h in range(ph) for p_w in range(pw)]
    p = jnp.concatenate(views, axis=-1)
    y = (p.reshape(b * ho * wo, -1) @ k2.astype(p.dtype)).reshape(b, ho, wo, c_out)
    return y if bias is None else y + bias.astype(y.dtype)


def conv_transpose_stride2(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, padding: Padding = "SAME") -> jax.Array:  # fmt: skip
    """``lax.conv_transpose(x, kernel, (2, 2), padding)`` (+ bias): (B, H, W, C_in) -> (B, H', W', C_out).

    ``lax.conv_transpose`` correlates the 2x-dilated input, padded by (lo, hi), with the kernel:
    output o sums x[i]·k[a] over o + a - lo = 2i. Output phase r (o = 2m + r) uses the kernel
    rows a0 + 2t with a0 = (lo - r) mod 2 and reads x[m + t + d] with d = (r + a0 - lo) / 2: a
    stride-1 correlation. The four phases' sub-kernels (zero-padded to ceil(k/2) rows and
    columns) are stacked on the outputs of one stride-1 VALID convolution (4·C_out maps); each
    phase is read at its own offset d and the phases are interleaved (depth-to-space).
    """
    b, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    pads = transpose_pads(padding, (kh, kw), 2)
    out = [2 * (n - 1) + 1 + lo + hi - k + 1 for n, k, (lo, hi) in zip((h, w), (kh, kw), pads, strict=True)]  # fmt: skip
    # per axis and phase r: first kernel row a0, input offset d; T sub-kernel rows
    a0 = [[(lo - r) % 2 for r in (0, 1)] for lo, _ in pads]
    d = [[(r + a0[ax][r] - pads[ax][0]) // 2 for r in (0, 1)] for ax in (0, 1)]
    t = [(kh + 1) // 2, (kw + 1) // 2]
    k = jnp.pad(kernel, ((0, 2 * t[0] + 1 - kh), (0, 2 * t[1] + 1 - kw), (0, 0), (0, 0)))
    subs = [k[a0[0][r_h] : a0[0][r_h] + 2 * t[0] : 2, a0[1][r_w] : a0[1][r_w] + 2 * t[1] : 2]
            for r_h in (0, 1) for r_w in (0, 1)]  # fmt: skip
    y = _phase_conv(x, subs, d, out)
    return y if bias is None else y + bias.astype(y.dtype)


def upsample_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, padding: Padding = "SAME") -> jax.Array:  # fmt: skip
    """``lax.conv_general_dilated(upsample2x(x), kernel, (1, 1), padding)`` (+ bias), nearest 2x
    upsampling: (B, H, W, C_in) -> (B, H', W', C_out), computed at the input's resolution.

    Upsampled row j holds x[j // 2] (and is zero padding exactly where j // 2 is), so output
    phase r (o = 2m + r) meets x[m + (r + a - lo) // 2] at kernel row a: the kernel rows that
    meet the same input row are summed into a sub-kernel of ceil(k/2)(+1) rows, and the four
    phases run as one stride-1 convolution at the input resolution (a 3x3 kernel: four 2x2
    sub-kernels, 4/9 of the multiply-adds).
    """
    b, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    pads = _conv_pads(padding, (2 * h, 2 * w), (kh, kw), 1)
    out = [2 * n + lo + hi - k + 1 for n, k, (lo, hi) in zip((h, w), (kh, kw), pads, strict=True)]  # fmt: skip
    d = [[(r - lo) // 2 for r in (0, 1)] for lo, _ in pads]  # first input offset of phase r
    taps = [max((r + k - 1 - lo) // 2 - d[ax][r] + 1 for r in (0, 1)) for ax, (k, (lo, _)) in enumerate(zip((kh, kw), pads, strict=True))]  # fmt: skip
    # sums[ax][r][t, a] = 1 where kernel row a of phase r meets input offset d + t
    sums = [[np.array([[float((r + a - lo) // 2 - d[ax][r] == t) for a in range(k)] for t in range(taps[ax])])
             for r in (0, 1)] for ax, (k, (lo, _)) in enumerate(zip((kh, kw), pads, strict=True))]  # fmt: skip
    subs = [jnp.einsum("ta,sb,abio->tsio", sums[0][r_h], sums[1][r_w], kernel).astype(kernel.dtype)
            for r_h in (0, 1) for r_w in (0, 1)]  # fmt: skip
    y = _phase_conv(x, subs, d, out)
    return y if bias is None else y + bias.astype(y.dtype)


def _phase_conv(x: jax.Array, subs: Sequence[jax.Array], d: Sequence[Sequence[int]], out: Sequence[int]) -> jax.Array:  # fmt: skip
    """Output phase (r_h, r_w) (o = 2m + r) at m of ``sum_t x[m + d[.][r] + t] · subs[2 r_h + r_w][t]``
    for the four sub-kernels (T_h, T_w, C_in, C_out), as one stride-1 VALID convolution with the
    sub-kernels stacked on its 4·C_out outputs, each phase read at its offset and the phases
    interleaved (depth-to-space); cropped to ``out`` (H', W')."""
    b, h, w, c = x.shape
    t, c_out = subs[0].shape[:2], subs[0].shape[3]
    m = [(n + 1) // 2 for n in out]
    left = [max(0, -min(d[ax])) for ax in (0, 1)]
    right = [max(0, max(d[ax]) + m[ax] + t[ax] - 1 - n) for ax, n in enumerate((h, w))]
    xp = jnp.pad(x, ((0, 0), (left[0], right[0]), (left[1], right[1]), (0, 0)))
    k4 = jnp.stack(subs, axis=3).reshape(t[0], t[1], c, 4 * c_out)  # outputs (r_h, r_w, C_out)
    y = jax.lax.conv_general_dilated(xp, k4.astype(xp.dtype), (1, 1), "VALID", dimension_numbers=DN)
    y = y.reshape(*y.shape[:3], 2, 2, c_out)
    rows = []
    for r_h in (0, 1):
        i0 = d[0][r_h] + left[0]
        cols = [y[:, i0 : i0 + m[0], d[1][r_w] + left[1] : d[1][r_w] + left[1] + m[1], r_h, r_w] for r_w in (0, 1)]  # fmt: skip
        rows.append(jnp.stack(cols, axis=3))  # (B, M_h, M_w, r_w, C_out)
    return jnp.stack(rows, axis=2).reshape(b, 2 * m[0], 2 * m[1], c_out)[:, : out[0], : out[1]]


def _conv_pads(
    padding: Padding, size: Sequence[int], kernel: Sequence[int], stride: int = 2
) -> list[tuple[int, int]]:
    """(before, after) per spatial axis, as ``lax.conv_general_dilated`` resolves ``padding``."""
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(size, kernel, (stride, stride), padding)
    return [(int(lo), int(hi)) for lo, hi in padding]


def transpose_pads(padding: Any, kernel: Sequence[int], stride: int) -> list[tuple[int, int]]:
    """The (before, after) padding ``lax.conv_transpose`` gives its stride-dilated input per
    spatial axis: "SAME" pads k + s - 2 in all, k - 1 before when s > k - 1, else half rounded up;
    "VALID" pads k - 1 before and k + s - 2 + max(k - s, 0) in all; pairs are used as given."""
    if not isinstance(padding, str):
        return [(int(lo), int(hi)) for lo, hi in padding]
    if padding not in ("SAME", "VALID"):
        raise ValueError(
            f"padding must be 'SAME', 'VALID' or (before, after) pairs, got {padding!r}."
        )
    out = []
    for k in kernel:
        if padding == "SAME":
            total, lo = k + stride - 2, (k - 1 if stride > k - 1 else -(-(k + stride - 2) // 2))
        else:
            total, lo = k + stride - 2 + max(k - stride, 0), k - 1
        out.append((lo, total - lo))
    return out
