"""DCGAN's stride-2 layers rewritten without strides or dilation, for XLA:CPU.

XLA:CPU has no fast kernel for convolutions with lhs dilation (the forward pass of a transposed
convolution, the input gradient of a strided one); it runs them, and the second derivatives a
WGAN-GP critic takes through each layer, as naive loops (10-20x slower here). The functions below compute exactly the same outputs from pads, slices and reshapes
plus one ``dot`` (the strided convolution, whose double derivative a gradient penalty takes) or
one stride-1 convolution (the transposed one, differentiated once); every derivative of those runs
on XLA:CPU's GEMM or stride-1 convolution kernels. Parameters keep the layouts of ``nnx.Conv`` /
``nnx.ConvTranspose`` (kernel ``(4, 4, C_in, C_out)``), so the modules still own ordinary Flax
layers.

All arrays are NHWC; the strided convolution needs even height and width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _patches_matmul(windows: list[jax.Array], kernel2d: jax.Array) -> jax.Array:
    """Concatenate same-shape (B, H, W, C) views on channels and multiply by (len·C, C_out)."""
    p = jnp.concatenate(windows, axis=-1)
    b, h, w, k = p.shape
    y = p.reshape(b * h * w, k) @ kernel2d.astype(p.dtype)
    return y.reshape(b, h, w, kernel2d.shape[-1])


def conv4x4_stride2(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
    """``nnx.Conv(C_in, C_out, (4, 4), strides=2, padding="SAME")``: (B, H, W, C_in) -> (B, H/2, W/2, C_out).

    SAME pads one pixel on each side; output pixel i reads padded rows 2i..2i+3. With the padded
    input folded into 2x2 blocks (space-to-depth, block index m, offset q), kernel row a = 2p + q
    meets block i + p: a 2x2 stride-1 convolution over 4·C_in channels, computed as one matmul of
    the four shifted block views (B, H/2, W/2, 16·C_in) with the kernel (16·C_in, C_out).
    """
    b, h, w, c = x.shape
    _check_even(h, w)
    c_out = kernel.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    mh, mw = (h + 2) // 2, (w + 2) // 2
    s = xp.reshape(b, mh, 2, mw, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, mh, mw, 4 * c)
    # kernel[a_h, a_w] with a = 2p + q  ->  k2[(p_h, p_w, q_h, q_w, c)]
    k2 = kernel.reshape(2, 2, 2, 2, c, c_out).transpose(0, 2, 1, 3, 4, 5).reshape(16 * c, c_out)
    views = [s[:, p_h : p_h + h // 2, p_w : p_w + w // 2] for p_h in (0, 1) for p_w in (0, 1)]
    y = _patches_matmul(views, k2)
    return y if bias is None else y + bias.astype(y.dtype)


def conv_transpose4x4_stride2(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
    """``nnx.ConvTranspose(C_in, C_out, (4, 4), strides=2, padding="SAME")``: (B, H, W, C_in) -> (B, 2H, 2W, C_out).

    ``lax.conv_transpose`` with SAME pads the 2x-dilated input by 2 and applies the (unflipped)
    kernel, so output row 2i + r sums kernel rows a ≡ r (mod 2): row 2i reads x[i-1]·k[0] + x[i]·k[2]
    and row 2i+1 reads x[i]·k[1] + x[i+1]·k[3]. With xp the input padded by one pixel, output
    phase r (of rows and of columns) at i is sum_t xp[i + r + t]·k[r + 2t], t in {0, 1}: one
    stride-1 2x2 VALID convolution of xp with the four phases' kernels stacked on its outputs
    (B, H+1, W+1, 4·C_out), read at offset r per phase and interleaved (depth-to-space). No
    dilation: XLA:CPU runs it, and its gradients, on its stride-1 convolution kernels.
    """
    b, h, w, c = x.shape
    c_out = kernel.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    # k[t_h, t_w, c, (r_h, r_w, o)] = kernel[r_h + 2 t_h, r_w + 2 t_w, c, o]
    k = kernel.reshape(2, 2, 2, 2, c, c_out).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * c_out)
    y = jax.lax.conv_general_dilated(
        xp, k.astype(xp.dtype), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    ).reshape(b, h + 1, w + 1, 2, 2, c_out)
    phases = [
        jnp.stack([y[:, r_h : r_h + h, r_w : r_w + w, r_h, r_w] for r_w in (0, 1)], axis=3)
        for r_h in (0, 1)
    ]  # each (B, H, W, r_w, C_out)
    y = jnp.stack(phases, axis=2).reshape(b, 2 * h, 2 * w, c_out)
    return y if bias is None else y + bias.astype(y.dtype)


def _check_even(h: int, w: int) -> None:
    if h % 2 or w % 2:
        raise ValueError(f"stride-2 convolution needs even height and width, got {h}x{w}.")
