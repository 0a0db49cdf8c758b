"""DCGAN's stride-2 layers as exact matrix products of shifted views, for XLA:CPU.

XLA:CPU has no fast kernel for convolutions with lhs dilation (the forward pass of a transposed
convolution, the input gradient of a strided one) nor for DCGAN's weight gradients (window = the
whole feature map); it runs them as naive loops, and a WGAN-GP critic differentiates twice through
each layer (``benchmarks/run.py --cases dcgan64_native``). The functions below compute exactly the
same outputs as pads, slices, reshapes and one ``dot`` per layer (per output phase for the
transposed convolution); every derivative of those is again slices, pads and matrix products,
which XLA:CPU runs on its GEMM kernels. Parameters keep the layouts of ``nnx.Conv`` /
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
    and row 2i+1 reads x[i]·k[1] + x[i+1]·k[3]. Each of the four output phases (r_h, r_w) is a 2x2
    stride-1 convolution of the one-pixel-padded input, offset by r (one matmul of four shifted
    views each); the phases are then interleaved (depth-to-space).
    """
    b, h, w, c = x.shape
    c_out = kernel.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = []
    for r_h in (0, 1):
        cols = []
        for r_w in (0, 1):
            # phase r uses kernel rows r, r + 2 at padded offsets r, r + 1
            k = kernel[r_h::2, r_w::2].reshape(4 * c, c_out)
            views = [
                xp[:, r_h + t_h : r_h + t_h + h, r_w + t_w : r_w + t_w + w]
                for t_h in (0, 1)
                for t_w in (0, 1)
            ]
            cols.append(_patches_matmul(views, k))
        rows.append(jnp.stack(cols, axis=3))  # (B, H, W, r_w, C_out)
    y = jnp.stack(rows, axis=2)  # (B, H, r_h, W, r_w, C_out)
    y = y.reshape(b, 2 * h, 2 * w, c_out)
    return y if bias is None else y + bias.astype(y.dtype)


def _check_even(h: int, w: int) -> None:
    if h % 2 or w % 2:
        raise ValueError(f"stride-2 convolution needs even height and width, got {h}x{w}.")
