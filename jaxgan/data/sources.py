"""Random-access image sources at native resolution (the pipeline's input side).

A source maps record indices to uint8 (n, R, R, C) images at its native resolution R (a power of
two) and, optionally, int32 labels. Three kinds:

- ``ArraySource``: everything decoded and held in memory (small data sets, offline data).
- ``StackedSource``: Stacked MNIST, built on the fly from a base set and an index table.
- ``RecordSource``: decodes records one by one through a callable (tfds, large folders), in a
  thread pool, optionally filling an in-memory uint8 cache the first time each record is read.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import warnings
from collections.abc import Callable

import numpy as np

#: Default memory budget for decoded uint8 caches (override with $JAXGAN_DATA_CACHE_MB).
DEFAULT_CACHE_MB = 2048


def cache_budget_bytes() -> int:
    """The byte budget under which a source is cached in memory: $JAXGAN_DATA_CACHE_MB or 2 GiB."""
    mb = os.environ.get("JAXGAN_DATA_CACHE_MB")
    return int(float(mb) * 2**20) if mb else DEFAULT_CACHE_MB * 2**20


def default_workers() -> int:
    """Decode threads: one per CPU core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


class ImageSource:
    """Base class. Attributes: ``name``, ``num_examples``, ``native_resolution``, ``channels``,
    ``max_value`` (the uint8 value that maps to +1: 255, or 16 for digits), ``label_shape``
    (``()`` scalar labels, ``(3,)`` for Stacked MNIST, ``None`` without labels), ``skipped``
    (unreadable files left out)."""

    name: str = ""
    num_examples: int = 0
    native_resolution: int = 0
    channels: int = 0
    max_value: float = 255.0
    label_shape: tuple[int, ...] | None = None
    skipped: int = 0

    def fetch(self, indices: np.ndarray, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Images uint8 (n, R, R, C) for record ``indices`` (n,), and int32 labels when asked."""
        raise NotImplementedError

    def close(self) -> None:
        """Release threads or files (idempotent)."""


class ArraySource(ImageSource):
    """Images held in memory: uint8 (N, R, R, C) and optional int32 labels (N, ...)."""

    def __init__(
        self,
        name: str,
        images: np.ndarray,
        labels: np.ndarray | None,
        *,
        max_value: float = 255.0,
        skipped: int = 0,
    ):
        if images.ndim != 4 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 (N, R, R, C) images, got {images.shape}.")
        self.name = name
        self.images = images
        self.labels = None if labels is None else np.asarray(labels, np.int32)
        self.num_examples = int(images.shape[0])
        self.native_resolution = int(images.shape[1])
        self.channels = int(images.shape[3])
        self.max_value = float(max_value)
        self.label_shape = None if labels is None else tuple(self.labels.shape[1:])
        self.skipped = skipped

    def fetch(self, indices: np.ndarray, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        lab = self.labels[indices] if labels and self.labels is not None else None
        return self.images[indices], lab


class StackedSource(ImageSource):
    """Stacked MNIST: record i stacks base images ``table[i, 0..2]`` as its R, G, B channels.

    ``base`` uint8 (M, R, R, 1), ``base_labels`` int32 (M,), ``table`` int (N, 3). Labels of a
    record: int32 (3,), the digit of each channel (mode = 100*l0 + 10*l1 + l2).
    """

    def __init__(self, name: str, base: np.ndarray, base_labels: np.ndarray, table: np.ndarray):
        self.name = name
        self.base = base[..., 0]
        self.base_labels = np.asarray(base_labels, np.int32)
        self.table = np.asarray(table, np.int64)
        self.num_examples = int(len(table))
        self.native_resolution = int(base.shape[1])
        self.channels = 3
        self.max_value = 255.0
        self.label_shape = (3,)

    def fetch(self, indices: np.ndarray, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        rows = self.table[indices]
        images = np.stack([self.base[rows[:, c]] for c in range(3)], axis=-1)
        return images, (self.base_labels[rows] if labels else None)


class RecordSource(ImageSource):
    """Records decoded one at a time by ``read(i) -> (uint8 (R, R, C), label or None)``.

    Decoding runs in a pool of ``workers`` threads (PIL and the tfds readers release the GIL).
    With ``cache=True`` each record is decoded once and kept (uint8) for later epochs.
    With ``skip_errors=True`` a record whose decoding fails (a truncated file) is replaced by the
    next readable record, deterministically; failures are counted in ``skipped`` and reported
    with a single warning.
    """

    def __init__(
        self,
        name: str,
        num_examples: int,
        read: Callable[[int], tuple[np.ndarray, object]],
        *,
        native_resolution: int,
        channels: int,
        label_shape: tuple[int, ...] | None,
        cache: bool,
        workers: int | None = None,
        skip_errors: bool = False,
        skipped: int = 0,
    ):
        self.name = name
        self.num_examples = int(num_examples)
        self.native_resolution = int(native_resolution)
        self.channels = int(channels)
        self.max_value = 255.0
        self.label_shape = label_shape
        self.skipped = skipped
        self._read = read
        self._skip_errors = skip_errors
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self._warned = False
        self._pool = cf.ThreadPoolExecutor(workers or default_workers(), "jaxgan-decode")
        shape = (self.num_examples, self.native_resolution, self.native_resolution, self.channels)
        # np.empty only reserves address space: pages are committed as records get decoded.
        self._cache = np.empty(shape, np.uint8) if cache else None
        lab_shape = (self.num_examples, *(label_shape or ()))
        self._cache_labels = np.zeros(lab_shape, np.int32) if cache else None
        self._filled = np.zeros(self.num_examples, bool) if cache else None

    def _decode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        r = self.native_resolution
        for k in range(self.num_examples):
            j = (i + k) % self.num_examples
            try:
                image, label = self._read(j)
            except Exception as e:  # a corrupt record: substitute the next readable one
                if not self._skip_errors:
                    raise
                self._note_failure(j, e)
                continue
            image = np.asarray(image, np.uint8).reshape(r, r, self.channels)
            lab = np.zeros((), np.int32) if label is None else np.asarray(label, np.int32)
            return image, lab
        raise RuntimeError(f"{self.name}: no record could be decoded.")

    def _note_failure(self, j: int, err: Exception) -> None:
        with self._lock:
            if j in self._failed:
                return
            self._failed.add(j)
            self.skipped += 1
            first = not self._warned
            self._warned = True
        if first:
            warnings.warn(
                f"{self.name}: record {j} could not be decoded ({err}); such records are replaced "
                "by the next readable one and counted in the pipeline's `skipped`.",
                RuntimeWarning,
                stacklevel=2,
            )

    def fetch(self, indices: np.ndarray, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        indices = np.asarray(indices, np.int64)
        if self._cache is not None:
            missing = np.unique(indices[~self._filled[indices]])
            for i, (img, lab) in zip(missing, self._pool.map(self._decode, missing), strict=True):
                self._cache[i] = img
                self._cache_labels[i] = lab
                self._filled[i] = True
            lab = self._cache_labels[indices] if labels else None
            return self._cache[indices], lab
        decoded = list(self._pool.map(self._decode, indices))
        images = np.stack([d[0] for d in decoded])
        lab = np.stack([d[1] for d in decoded]).astype(np.int32) if labels else None
        return images, lab

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
