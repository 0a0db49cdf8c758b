"""Image helpers shared by every image source: sizes, crops, resizing, box downsampling, scaling,
and the conversion of decoded PIL images of any pixel mode to 8-bit (``pil_to_uint8``).

Conventions: images are uint8 NHWC (or HWC) at a source's native resolution; batches handed to
the trainer are float32 NHWC in [-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jaxgan.arrays import is_power_of_two
from jaxgan.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: Largest native resolution jaxgan derives for variable-size sources (folders, lsun, ...).
MAX_NATIVE_RESOLUTION = 1024


def floor_power_of_two(n: int) -> int:
    """The largest power of two <= n (n >= 1)."""
    if n < 1:
        raise ValueError(f"floor_power_of_two: n must be >= 1, got {n}.")
    return 1 << (int(n).bit_length() - 1)


def native_size(height: int, width: int) -> tuple[int, str]:
    """Native square size of an image source of ``height`` x ``width`` images, and how it is made.

    - square, power of two: kept (``"keep"``);
    - square, side < 32, not a power of two (MNIST-type 28x28): padded to the next power of two
      with the background value 0, i.e. -1 after scaling (``"pad"``);
    - anything else: centre-cropped to a square of the smaller side and resized with an
      antialiasing filter to the largest power of two <= that side, capped at
      ``MAX_NATIVE_RESOLUTION`` (``"crop_resize"``).
    """
    side = min(height, width)
    if height == width and is_power_of_two(side) and side <= MAX_NATIVE_RESOLUTION:
        return side, "keep"
    if height == width and side < 32:
        return 1 << int(side - 1).bit_length(), "pad"
    return min(floor_power_of_two(side), MAX_NATIVE_RESOLUTION), "crop_resize"


def pad_to(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the two spatial axes of (..., H, W, C) symmetrically to ``size`` x ``size``."""
    h, w = images.shape[-3], images.shape[-2]
    if h > size or w > size:
        raise ValueError(f"pad_to: {h}x{w} images do not fit in {size}x{size}.")
    top, left = (size - h) // 2, (size - w) // 2
    pad = [(0, 0)] * images.ndim
    pad[-3] = (top, size - h - top)
    pad[-2] = (left, size - w - left)
    return np.pad(images, pad)


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The (left, upper, right, lower) box of the largest centred square of a W x H image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an HWC uint8 image to a square and resize it to ``size`` (antialiased).

    Downsizing uses PIL's BOX filter when the side is an exact multiple of ``size`` (a pure area
    average) and LANCZOS otherwise. Returns uint8 (size, size, C).
    """
    from PIL import Image

    h, w, c = image.shape
    left, top, right, bottom = center_crop_box(w, h)
    crop = image[top:bottom, left:right]
    side = crop.shape[0]
    if side == size:
        return np.ascontiguousarray(crop)
    pil = Image.fromarray(crop[..., 0] if c == 1 else crop)
    filt = Image.Resampling.BOX if side % size == 0 else Image.Resampling.LANCZOS
    out = np.asarray(pil.resize((size, size), filt))
    return out.reshape(size, size, c)


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_PREMULTIPLIED = ("La", "RGBa")
#: PIL pixel modes ``pil_to_uint8`` converts; any other (``LAB``: PIL has no true conversion) is
#: refused.
CONVERTED_MODES: frozenset[str] = frozenset(
    ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "HSV")
    + _PREMULTIPLIED
    + _WIDE_MODES
)


def pil_to_uint8(img: PILImage, grayscale: bool) -> np.ndarray:
    """A PIL image of any mode in ``CONVERTED_MODES`` as uint8 (H, W, 1) grey or (H, W, 3) RGB.

    - 16-bit grey (``I;16``, ``I;16B``, ...): v / 257 rounded (0..65535 -> 0..255).
    - 32-bit int ``I`` (no bit depth of its own): negatives are 0; then by the image's maximum,
      <= 255 is taken as 8-bit, <= 65535 as 16-bit (/ 257), larger as 31-bit (* 255 / (2**31-1)).
    - float ``F``: NaN is 0; values all in [0, 1] are scaled by 255, others clipped to [0, 255].
    - Alpha (``LA``, ``RGBA``, ``PA``, palette or colour-key transparency, 16-bit grey's too)
      is composited onto black, c * a / 255 rounded, so hidden pixels are 0 whatever colour they
      were stored with; premultiplied ``La`` / ``RGBa`` are that already and keep their colours.
    - ``CMYK``, ``YCbCr``, ``HSV``, ``RGBX``, palettes, ``1``: PIL's conversion to RGB / L.
    - Grey images in RGB repeat the grey; colour in grey is PIL's ITU-R 601-2 luminance of the
      RGB image (for ``YCbCr`` too, so out-of-gamut colours agree between the two).

    Raises ``DataError`` for another mode.
    """
    from PIL import Image

    mode = img.mode
    if mode not in CONVERTED_MODES:
        raise DataError(
            f"image mode {mode} is not converted to 8-bit RGB or grey "
            f"(modes read: {', '.join(sorted(CONVERTED_MODES))})."
        )
    if mode in _WIDE_MODES:
        raw = np.asarray(img)
        arr = _wide_to_uint8(raw, mode)[..., None]
        if isinstance(img.info.get("transparency"), int):  # a 16-bit grey PNG's colour key
            arr[raw == img.info["transparency"]] = 0
    elif mode in _PREMULTIPLIED:
        arr = np.asarray(img)[..., :-1]
    elif mode in ("LA", "RGBA", "PA") or "transparency" in img.info:
        if mode not in ("LA", "RGBA"):  # palette or colour-key transparency
            img = img.convert("RGBA")
        arr = _over_black(np.asarray(img))
    else:
        if mode not in ("1", "L", "P", "RGB"):  # grey from the RGB shown, not from Y (YCbCr)
            img = img.convert("RGB")
        arr = np.asarray(img.convert("L" if grayscale else "RGB"))
        return arr[..., None] if arr.ndim == 2 else arr
    if grayscale and arr.shape[-1] == 3:
        return np.asarray(Image.fromarray(arr).convert("L"))[..., None]
    return np.repeat(arr, 3, axis=-1) if not grayscale and arr.shape[-1] == 1 else arr


def _over_black(arr: np.ndarray) -> np.ndarray:
    """(H, W, C+1) uint8 colour + alpha to (H, W, C) uint8 composited onto black (exact rounding:
    c * a / 255 is never a tie)."""
    color, alpha = arr[..., :-1].astype(np.uint16), arr[..., -1:].astype(np.uint16)
    return ((color * alpha + 127) // 255).astype(np.uint8)


def _wide_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) 16/32-bit int or float pixels of PIL ``mode`` to uint8 (see ``pil_to_uint8``)."""
    if mode == "F":
        v = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if v.size and v.min() >= 0 and v.max() <= 1:
            v = v * 255
        return np.rint(np.clip(v, 0, 255)).astype(np.uint8)
    v = np.maximum(arr.astype(np.int64), 0)
    top = int(v.max()) if v.size else 0
    if mode == "I" and top <= 255:
        return v.astype(np.uint8)
    if mode == "I" and top > 65535:
        return np.rint(v * (255 / (2**31 - 1))).astype(np.uint8)
    return ((v + 128) // 257).astype(np.uint8)  # round(v / 257): never a tie


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB to (..., 1) uint8 luminance, ITU-R 601-2 weights (PIL's ``convert("L")``)."""
    if images.shape[-1] == 1:
        return images
    if images.shape[-1] != 3:
        raise ValueError(f"to_grayscale: expected 1 or 3 channels, got {images.shape[-1]}.")
    w = np.array([299, 587, 114], np.uint32)
    lum = (images.astype(np.uint32) @ w + 500) // 1000
    return lum.astype(np.uint8)[..., None]


def box_downsample(images: np.ndarray, resolution: int) -> np.ndarray:
    """Area (box) downsampling of (N, S, S, C) images to (N, r, r, C), r dividing S.

    Each output pixel is the mean of its (S/r) x (S/r) input block. Returns float32 in the input's
    value range (no rounding), or the input unchanged (as float32) when r == S.
    """
    n, s, s2, c = images.shape
    if s != s2:
        raise ValueError(f"box_downsample: images must be square, got {s}x{s2}.")
    if resolution > s or s % resolution:
        raise ValueError(f"box_downsample: resolution {resolution} does not divide {s}.")
    f = s // resolution
    if f == 1:
        return images.astype(np.float32)
    # Rows: add the f rows of each block (contiguous slices, fast). Float32 sums of uint8 are
    # exact up to f*f*255 < 2**24, i.e. for every factor up to 256.
    acc = np.float32 if images.dtype == np.uint8 else np.float64
    a = images.reshape(n, resolution, f, s * c).sum(axis=2, dtype=acc).reshape(n, resolution, s, c)
    # Columns: pairwise halving for power-of-two factors, a reshaped sum otherwise.
    if is_power_of_two(f):
        while a.shape[2] > resolution:
            a = a[:, :, 0::2] + a[:, :, 1::2]
    else:
        a = a.reshape(n, resolution, resolution, f, c).sum(axis=3)
    if a.dtype == np.float32 and is_power_of_two(f):
        a *= np.float32(1.0 / (f * f))  # a power of two: exact
        return a
    return (a / np.float64(f * f)).astype(np.float32)


def to_unit_range(images: np.ndarray, max_value: float) -> np.ndarray:
    """Map values in [0, max_value] to float32 in [-1, 1]."""
    half = np.float32(max_value / 2.0)
    return images.astype(np.float32) / half - np.float32(1.0)


def flip_bits(seed: int, positions: np.ndarray) -> np.ndarray:
    """One pseudo-random bit per stream position: a pure function of (seed, position).

    A splitmix64 hash of the position offset by a hash of the seed; bool (n,). Used for mirror
    augmentation, so that a flip depends only on the seed and where the image is in the stream.
    """
    golden = np.uint64(0x9E3779B97F4A7C15)
    key = _splitmix64(np.array([seed % (1 << 64)], np.uint64) * golden)[0]
    z = _splitmix64(positions.astype(np.uint64) * golden + key)
    return (z >> np.uint64(63)).astype(bool)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
