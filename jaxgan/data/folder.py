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
"""

from __future__ import annotations

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


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def read_image(path: str, size: int, grayscale: bool) -> np.ndarray:
    """Decode one file to uint8 (size, size, C): EXIF orientation applied, RGB (C=3) or luminance
    (C=1), centre-cropped to a square and resized with antialiasing."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        img = img.convert("L" if grayscale else "RGB")
        arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
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
        raise ValueError(f"dataset={name}: {root!r} is not a directory.")
    files = list_images(root)
    if not files:
        raise ValueError(
            f"dataset={name}: no images found (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)} files)."
        )
    workers = workers or default_workers()
    with cf.ThreadPoolExecutor(workers, "jaxgan-scan") as pool:
        sizes = list(pool.map(lambda f: _try(_image_size, f), files))
    bad = [(f, e) for f, (s, e) in zip(files, sizes, strict=True) if s is None]
    good = [(f, s) for f, (s, _) in zip(files, sizes, strict=True) if s is not None]
    if not good:
        raise ValueError(f"dataset={name}: none of the {len(files)} image files could be read.")
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
            raise ValueError(f"dataset={name}: none of the {len(files)} image files could be read.")
        _warn_skipped(name, bad, len(files))
        return ArraySource(name, np.stack(arrays), None, skipped=len(bad))

    _warn_skipped(name, bad, len(files))
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
        skipped=len(bad),
    )


def _warn_skipped(name: str, bad: list[tuple[str, Exception]], total: int) -> None:
    if bad:
        path, err = bad[0]
        warnings.warn(
            f"{name}: skipped {len(bad)} of {total} image files that could not be read "
            f"(first: {path}: {err}).",
            RuntimeWarning,
            stacklevel=3,
        )
