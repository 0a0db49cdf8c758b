"""``StridedConv`` / ``StridedConvTranspose``: ``nnx.Conv`` / ``nnx.ConvTranspose`` at stride 2 (same
arguments, same parameters) that run their fast CPU form where lowered for CPU.

XLA:CPU runs stride-2 convolutions under a gradient penalty's second derivative, and the forward
of stride-2 transposed ones, as naive loops (10-20x slower here); cuDNN and TPUs have fast
kernels for both. These layers run :func:`jaxgan.models.cpu.on_cpu_call`, as the layers of
:func:`jaxgan.models.cpu.for_cpu` with the form fixed instead of timed: space-to-depth
(:func:`~jaxgan.models.conv_forms.conv_stride2`) and sub-pixel phases
(:func:`~jaxgan.models.conv_forms.conv_transpose_stride2`), so a step traced here exports
(``jax.export``) for an accelerator with the native convolution. ``impl``: "auto" (that form where
lowered for CPU, native elsewhere), "phase" (the form on every platform), "native" (the Flax
layer everywhere). ``for_cpu`` may still re-choose their forms by timing.
"""

from __future__ import annotations

from flax import nnx

from jaxgan.models.conv_forms import conv_stride2, conv_transpose_stride2
from jaxgan.models.cpu import on_cpu_call

__all__ = ["IMPLS", "StridedConv", "StridedConvTranspose", "check_impl", "conv_stride2",
           "conv_transpose_stride2"]  # fmt: skip

IMPLS = ("auto", "phase", "native")


def check_impl(impl: str, name: str = "impl") -> str:
    """``impl`` if it is one of :data:`IMPLS`; otherwise ValueError naming the argument ``name``."""
    if impl not in IMPLS:
        raise ValueError(f"{name} must be one of {IMPLS}, got {impl!r}.")
    return impl


class _Stride2:
    """The layer at stride 2 whose call is :func:`~jaxgan.models.cpu.on_cpu_call`, its CPU form set
    by ``impl`` (see the module docstring)."""

    _form = "native"  # the form "auto" and "phase" run
    __call__ = on_cpu_call

    def __init__(self, in_features: int, out_features: int, kernel_size, *, impl: str = "auto", **kw) -> None:  # fmt: skip
        check_impl(impl)
        super().__init__(in_features, out_features, kernel_size, strides=2, **kw)
        self.impl = impl
        self.cpu_form = "native" if impl == "native" else self._form
        self.cpu_everywhere = impl == "phase"


class StridedConv(_Stride2, nnx.Conv):
    """``nnx.Conv`` at stride 2, space-to-depth where lowered for CPU (``impl="auto"``)."""

    _form = "s2d"


class StridedConvTranspose(_Stride2, nnx.ConvTranspose):
    """``nnx.ConvTranspose`` at stride 2 (``transpose_kernel`` False), sub-pixel phases where
    lowered for CPU (``impl="auto"``)."""

    _form = "phase"
