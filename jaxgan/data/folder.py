"""``folder:PATH``: a folder (searched recursively) of PNG / JPEG / WebP images of any sizes.

Every image is centre-cropped to a square and resized with an antialiasing filter (PIL BOX when
the side is a multiple of the target, LANCZOS otherwise) to the folder's *native resolution*:
the largest power of two <= the smallest image side found, capped at 1024. Smaller resolutions
are then made by box downsampling, like every other source.

Files are listed in sorted path order (so record indices do not depend on the file system).
Image headers are read first: files that cannot be opened are skipped and counted. When the
decoded folder fits the cache budget (``sources.cache_budget_bytes()``, 2 GiB by default) every
image is decoded once, in threads, and kept in memory as uint8; files that fail to decode
(truncated) are skipped as well, and one warning reports the count. Larger folders are decoded
lazily in the pipeline's threads; a file that fails then is replaced by the next readable one
(deterministically) and reported by one more warning.

Pixels: EXIF orientation is applied, then every pixel mode becomes 8-bit RGB or grey by the rules
of ``images.pil_to_uint8`` (16-bit grey scaled by 255/65535, alpha composited onto black, ...).
Files in a mode it does not convert (``LAB``) are skipped, by their header, and counted in the
same single warning.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import warnings

import numpy as np

from jaxgan.data import images as im
from jaxgan.data.sources import (
    ArraySource,
    ImageSource,
    RecordSource,
    cache_budget_bytes,
    default_workers,
)
from jaxgan.errors import DataError

#: File name endings (case-insensitive) read as images.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

_MIN_NATIVE = 4


def list_images(root: str) -> list[str]:
    """Every PNG/JPEG/WebP file under ``root`` (recursive), sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(
            os.path.join(dirpath, f) for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)
        )
    return sorted(found)


def _header(path: str) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL pixel mode of a file, from its header."""
    from PIL import Image

    with Image.open(path) as img:
        return img.size, img.mode


def read_image(path: str, size: int, grayscale: bool) -> np.ndarray:
    """Decode one file to uint8 (size, size, C): EXIF orientation applied, RGB (C=3) or grey
    (C=1) by ``images.pil_to_uint8``, centre-cropped to a square and resized with antialiasing."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        arr = im.pil_to_uint8(ImageOps.exif_transpose(img), grayscale)
    return im.crop_resize(arr, size)


def _try(fn, *args):
    try:
        return fn(*args), None
    except Exception as e:  # any decoder error means "unreadable"
        return None, e


def folder_source(
    root: str,
    *,
    grayscale: bool = False,
    cache_bytes: int | None = None,
    workers: int | None = None,
) -> ImageSource:
    """An image source over the files under ``root`` (see the module docstring)."""
    root = os.path.expanduser(root)
    name = f"folder:{root}"
    if not os.path.isdir(root):
        raise DataError(f"dataset={name}: {root!r} is not a directory.")
    files = list_images(root)
    if not files:
        raise DataError(
            f"dataset={name}: no images found (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)} files)."
        )
    workers = workers or default_workers()
    with cf.ThreadPoolExecutor(workers, "jaxgan-scan") as pool:
        headers = list(pool.map(lambda f: _try(_header, f), files))
    bad = [(f, e) for f, (h, e) in zip(files, headers, strict=True) if h is None]
    read = [(f, h) for f, (h, _) in zip(files, headers, strict=True) if h is not None]
    refused = [(f, mode) for f, (_, mode) in read if mode not in im.CONVERTED_MODES]
    good = [(f, s) for f, (s, mode) in read if mode in im.CONVERTED_MODES]
    if not good:
        modes = f" (pixel modes not converted: {_count_modes(refused)})" if refused else ""
        raise DataError(
            f"dataset={name}: none of the {len(files)} image files could be read{modes}."
        )
    smallest = min(min(s) for _, s in good)
    if smallest < _MIN_NATIVE:
        tiny = next(f for f, s in good if min(s) == smallest)
        raise ValueError(f"dataset={name}: {tiny} is only {smallest} pixels on a side.")
    native = min(im.floor_power_of_two(smallest), im.MAX_NATIVE_RESOLUTION)
    channels = 1 if grayscale else 3
    paths = [f for f, _ in good]
    budget = cache_budget_bytes() if cache_bytes is None else cache_bytes

    if len(paths) * native * native * channels <= budget:
        with cf.ThreadPoolExecutor(workers, "jaxgan-decode") as pool:
            decoded = list(pool.map(lambda f: _try(read_image, f, native, grayscale), paths))
        bad += [(f, e) for f, (a, e) in zip(paths, decoded, strict=True) if a is None]
        arrays = [a for a, _ in decoded if a is not None]
        if not arrays:
            raise DataError(f"dataset={name}: none of the {len(files)} image files could be read.")
        _warn_skipped(name, bad, refused, len(files))
        return ArraySource(name, np.stack(arrays), None, skipped=len(bad) + len(refused))

    _warn_skipped(name, bad, refused, len(files))
    return RecordSource(
        name,
        len(paths),
        lambda i: (read_image(paths[i], native, grayscale), None),
        native_resolution=native,
        channels=channels,
        label_shape=None,
        cache=False,
        workers=workers,
        skip_errors=True,
        skipped=len(bad) + len(refused),
    )


def _count_modes(refused: list[tuple[str, str]]) -> str:
    """'LAB: 2, ...' for (path, mode) pairs."""
    counts = collections.Counter(mode for _, mode in refused)
    return ", ".join(f"{m}: {n}" for m, n in sorted(counts.items()))


def _warn_skipped(
    name: str, bad: list[tuple[str, Exception]], refused: list[tuple[str, str]], total: int
) -> None:
    """One warning for every file left out: unreadable ones and those in a refused pixel mode."""
    reasons = []
    if bad:
        reasons.append((len(bad), f"could not be read (first: {bad[0][0]}: {bad[0][1]})"))
    if refused:
        reasons.append(
            (
                len(refused),
                f"are in a pixel mode jaxgan does not convert ({_count_modes(refused)}; first: "
                f"{refused[0][0]}; save them as RGB, grey or 16-bit grey PNG to use them)",
            )
        )
    if not reasons:
        return
    if len(reasons) == 1:
        detail = f" that {reasons[0][1]}"
    else:
        detail = ": " + "; ".join(f"{n} {why}" for n, why in reasons)
    warnings.warn(
        f"{name}: skipped {len(bad) + len(refused)} of {total} image files{detail}.",
        RuntimeWarning,
        stacklevel=3,
    )
