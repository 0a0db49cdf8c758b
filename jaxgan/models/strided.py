"""Stride-2 convolutions and transposed convolutions rewritten without strides or dilation, for XLA:CPU.

XLA:CPU has no fast kernel for convolutions with lhs dilation (the forward pass of a transposed
convolution, the input gradient of a strided one); it runs them, and the second derivatives a
WGAN-GP critic takes through each layer, as naive loops (10-20x slower here). The two functions
below compute exactly what ``nnx.Conv(..., strides=2)`` / ``nnx.ConvTranspose(..., strides=2)``
compute, for any kernel size and padding, from pads, slices and reshapes plus

* one ``dot`` for the strided convolution (space-to-depth: a ceil(k/2)-wide stride-1 window over
  2x2 blocks; its double derivative, which a gradient penalty takes, is again dots), and
* one stride-1 convolution for the transposed one (sub-pixel: each of the four output phases is
  a stride-1 correlation with every other kernel row and column; it is differentiated once).

Parameters keep the layouts of ``nnx.Conv`` / ``nnx.ConvTranspose`` (kernel ``(kh, kw, C_in,
C_out)``, unflipped as ``lax.conv_transpose`` uses it), so modules still own ordinary Flax layers
and can switch to the native layer on other platforms: :class:`StridedConv` and
:class:`StridedConvTranspose` are those layers at stride 2 for your own models, rewritten on CPU
and native elsewhere (cuDNN and TPUs have fast strided kernels). That choice ("auto") is made per
lowering platform with ``jax.lax.platform_dependent``, not by the backend that traces: a ``cpu``
lowering holds the rewrite, a ``cuda``/``rocm``/``tpu`` one the native convolution, so a step
traced here exports (``jax.export``) for an accelerator with its accelerator form. All arrays are
NHWC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Padding = str | Sequence[tuple[int, int]]
DN = ("NHWC", "HWIO", "NHWC")


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
    pads = _transpose_pads(padding, (kh, kw))
    out = [2 * (n - 1) + 1 + lo + hi - k + 1 for n, k, (lo, hi) in zip((h, w), (kh, kw), pads, strict=True)]  # fmt: skip
    # per axis and phase r: first kernel row a0, input offset d; T sub-kernel rows, M outputs
    a0 = [[(lo - r) % 2 for r in (0, 1)] for lo, _ in pads]
    d = [[(r + a0[ax][r] - pads[ax][0]) // 2 for r in (0, 1)] for ax in (0, 1)]
    t = [(kh + 1) // 2, (kw + 1) // 2]
    m = [(n + 1) // 2 for n in out]
    left = [max(0, -min(d[ax])) for ax in (0, 1)]
    right = [max(0, max(d[ax]) + m[ax] + t[ax] - 1 - n) for ax, n in enumerate((h, w))]
    xp = jnp.pad(x, ((0, 0), (left[0], right[0]), (left[1], right[1]), (0, 0)))
    k = jnp.pad(kernel, ((0, 2 * t[0] + 1 - kh), (0, 2 * t[1] + 1 - kw), (0, 0), (0, 0)))
    subs = [k[a0[0][r_h] : a0[0][r_h] + 2 * t[0] : 2, a0[1][r_w] : a0[1][r_w] + 2 * t[1] : 2]
            for r_h in (0, 1) for r_w in (0, 1)]  # fmt: skip
    k4 = jnp.stack(subs, axis=3).reshape(t[0], t[1], c, 4 * c_out)  # outputs (r_h, r_w, C_out)
    y = jax.lax.conv_general_dilated(xp, k4.astype(xp.dtype), (1, 1), "VALID", dimension_numbers=DN)
    y = y.reshape(*y.shape[:3], 2, 2, c_out)
    rows = []
    for r_h in (0, 1):
        i0 = d[0][r_h] + left[0]
        cols = [y[:, i0 : i0 + m[0], d[1][r_w] + left[1] : d[1][r_w] + left[1] + m[1], r_h, r_w] for r_w in (0, 1)]  # fmt: skip
        rows.append(jnp.stack(cols, axis=3))  # (B, M_h, M_w, r_w, C_out)
    y = jnp.stack(rows, axis=2).reshape(b, 2 * m[0], 2 * m[1], c_out)[:, : out[0], : out[1]]
    return y if bias is None else y + bias.astype(y.dtype)


def _conv_pads(
    padding: Padding, size: Sequence[int], kernel: Sequence[int]
) -> list[tuple[int, int]]:
    """(before, after) per spatial axis, as ``lax.conv_general_dilated`` resolves ``padding``."""
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(size, kernel, (2, 2), padding)
    return [(int(lo), int(hi)) for lo, hi in padding]


def _transpose_pads(padding: Padding, kernel: Sequence[int]) -> list[tuple[int, int]]:
    """The dilated input's (before, after) padding per axis, as ``lax.conv_transpose`` resolves
    ``padding`` at stride 2: "SAME" pads k in all, k - 1 before for k <= 2, else ceil(k / 2);
    "VALID" pads k - 1 on each side (for k >= 2: every overlap); pairs are used as given."""
    if not isinstance(padding, str):
        return [(int(lo), int(hi)) for lo, hi in padding]
    if padding not in ("SAME", "VALID"):
        raise ValueError(
            f"padding must be 'SAME', 'VALID' or (before, after) pairs, got {padding!r}."
        )
    out = []
    for k in kernel:
        if padding == "SAME":
            total, lo = k, (k - 1 if k <= 2 else (k + 1) // 2)
        else:
            total, lo = k + max(k - 2, 0), k - 1
        out.append((lo, total - lo))
    return out


IMPLS = ("auto", "phase", "native")  # phase: the rewrites above; auto: phase when lowered for cpu


def check_impl(impl: str, name: str = "impl") -> str:
    """``impl`` if it is one of :data:`IMPLS`; otherwise ValueError naming the argument ``name``."""
    if impl not in IMPLS:
        raise ValueError(f"{name} must be one of {IMPLS}, got {impl!r}.")
    return impl


ConvFn = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]  # (x, kernel, bias) -> y


def per_platform(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None,
    *,
    impl: str,
    rewrite: ConvFn,
    native: ConvFn,
) -> jax.Array:
    """``rewrite(x, kernel, bias)`` or ``native(x, kernel, bias)`` as ``impl`` says: "phase" /
    "native" always, "auto" through ``jax.lax.platform_dependent`` (the rewrite where the
    computation is lowered for ``cpu``, native for every other platform). Both are traced under
    "auto"; a lowering for one platform keeps only its own, and an eager call runs only the
    current backend's."""
    if check_impl(impl) == "auto":
        return jax.lax.platform_dependent(x, kernel, bias, cpu=rewrite, default=native)
    return (rewrite if impl == "phase" else native)(x, kernel, bias)


class _RewrittenOnCpu:
    """Mixin for a Flax convolution layer at stride 2: the rewrite ``_rewrite`` or the Flax layer
    itself, as ``impl`` says (see :func:`per_platform`)."""

    _rewrite = None  # conv_stride2 or conv_transpose_stride2

    def __init__(self, in_features: int, out_features: int, kernel_size, *, impl: str = "auto", **kw) -> None:  # fmt: skip
        check_impl(impl)
        super().__init__(in_features, out_features, kernel_size, strides=2, **kw)
        self.impl = impl

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.impl == "native":
            return super().__call__(x)
        flax_call = super().__call__  # the Flax layer reads its own kernel and bias

        def rewrite(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
            return type(self)._rewrite(x, kernel, bias, self.padding)

        def native(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
            del kernel, bias
            return flax_call(x)

        bias = None if self.bias is None else self.bias[...]
        return per_platform(x, self.kernel[...], bias, impl=self.impl, rewrite=rewrite, native=native)  # fmt: skip


class StridedConv(_RewrittenOnCpu, nnx.Conv):
    """``nnx.Conv`` at stride 2 (same arguments, same parameters) that runs :func:`conv_stride2`
    where ``impl`` says so (default "auto": where lowered for CPU)."""

    _rewrite = staticmethod(conv_stride2)


class StridedConvTranspose(_RewrittenOnCpu, nnx.ConvTranspose):
    """``nnx.ConvTranspose`` at stride 2 (same arguments, same parameters; ``transpose_kernel``
    False) that runs :func:`conv_transpose_stride2` where ``impl`` says so (default "auto": where
    lowered for CPU)."""

    _rewrite = staticmethod(conv_transpose_stride2)
