"""The FID InceptionV3 (pool3, 2048-d) in Flax NNX, with weights loaded from a user-supplied file.

Architecture: the Inception network of TensorFlow's 2015 graph (``inception-2015-12-05``) used by
the original FID code (Heusel et al. 2017) and ported to PyTorch by pytorch-fid: torchvision's
InceptionV3 layout (Szegedy et al. 2016) with the FID patches: the average-pool branches of the A,
C and first E blocks exclude padding from their averages and the last E block (Mixed_7c) pools
its branch with a 3x3 max pool. Every convolution is bias-free, followed by BatchNorm
(eps 1e-3, inference statistics) and ReLU. Inputs are resized to 299x299 with bilinear
interpolation (half-pixel centres, no antialiasing: PyTorch's ``align_corners=False``), in
``[-1, 1]``; the output is the global average of Mixed_7c, 2048 features.

Weights file layout (``--inception_weights PATH``): an ``.npz`` whose keys and shapes are those of
pytorch-fid's ``state_dict`` for the FID Inception, e.g. ``Conv2d_1a_3x3.conv.weight`` (O, I, kh,
kw), ``Conv2d_1a_3x3.bn.weight``, ``.bn.bias``, ``.bn.running_mean``, ``.bn.running_var``, ...,
``Mixed_7c.branch_pool.bn.running_var`` (94 convolutions, 470 arrays). ``fc.*``, ``AuxLogits.*`` and
``*.num_batches_tracked`` are ignored; any other unknown key, a missing key or a wrong shape is an
error that names the keys. :func:`inception_weight_shapes` lists the expected layout.

Getting the real weights (on a machine with internet and PyTorch)::

    # pt_inception-2015-12-05-6726825d.pth: pytorch-fid's port of the TF FID graph, from
    # https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    import numpy as np, torch
    sd = torch.load("pt_inception-2015-12-05-6726825d.pth", map_location="cpu")
    np.savez("inception_fid.npz", **{k: v.numpy() for k, v in sd.items()})

pytorch-fid reports its port matches the TensorFlow FID values closely but not bit for bit
(differences in resizing and numerics); scores from this module are comparable with pytorch-fid's,
and only approximately with TF-computed FIDs. This repository never downloads anything.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.arrays import to_uint8
from jaxgan.metrics._common import as_nhwc, padded_batches, path_names

INCEPTION_SIZE = 299
NUM_FEATURES = 2048
_IGNORED_PREFIXES = ("fc.", "AuxLogits.")
_IGNORED_SUFFIXES = (".num_batches_tracked",)

Pad = tuple[tuple[int, int], tuple[int, int]]


def _pad(padding: int | tuple[int, int]) -> Pad:
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ((ph, ph), (pw, pw))


class BasicConv(nnx.Module):
    """Bias-free conv -> BatchNorm(eps 1e-3, running stats) -> ReLU. NHWC in and out."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        rngs: nnx.Rngs,
    ) -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.conv = nnx.Conv(
            cin, cout, k, strides=stride, padding=_pad(padding), use_bias=False, rngs=rngs
        )
        self.bn = nnx.BatchNorm(cout, use_running_average=True, epsilon=1e-3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.bn(self.conv(x)))


def _max_pool(x: jax.Array, stride: int, pad: int = 0) -> jax.Array:
    """3x3 max pool (padding, if any, never wins)."""
    p = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1), p)


def _avg_pool_exclude_pad(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average pool, padding 1, averaging only the in-image pixels."""
    p = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), p)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), p)
    return total / count


class InceptionA(nnx.Module):
    """35x35 block (Mixed_5b-d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, cin: int, pool_features: int, *, rngs: nnx.Rngs) -> None:
        self.branch1x1 = BasicConv(cin, 64, 1, rngs=rngs)
        self.branch5x5_1 = BasicConv(cin, 48, 1, rngs=rngs)
        self.branch5x5_2 = BasicConv(48, 64, 5, padding=2, rngs=rngs)
        self.branch3x3dbl_1 = BasicConv(cin, 64, 1, rngs=rngs)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, padding=1, rngs=rngs)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, padding=1, rngs=rngs)
        self.branch_pool = BasicConv(cin, pool_features, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nnx.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, cin: int, *, rngs: nnx.Rngs) -> None:
        self.branch3x3 = BasicConv(cin, 384, 3, stride=2, rngs=rngs)
        self.branch3x3dbl_1 = BasicConv(cin, 64, 1, rngs=rngs)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, padding=1, rngs=rngs)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, stride=2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return jnp.concatenate([b3, bd, _max_pool(x, 2)], axis=-1)


class InceptionC(nnx.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b-e)."""

    def __init__(self, cin: int, c7: int, *, rngs: nnx.Rngs) -> None:
        self.branch1x1 = BasicConv(cin, 192, 1, rngs=rngs)
        self.branch7x7_1 = BasicConv(cin, c7, 1, rngs=rngs)
        self.branch7x7_2 = BasicConv(c7, c7, (1, 7), padding=(0, 3), rngs=rngs)
        self.branch7x7_3 = BasicConv(c7, 192, (7, 1), padding=(3, 0), rngs=rngs)
        self.branch7x7dbl_1 = BasicConv(cin, c7, 1, rngs=rngs)
        self.branch7x7dbl_2 = BasicConv(c7, c7, (7, 1), padding=(3, 0), rngs=rngs)
        self.branch7x7dbl_3 = BasicConv(c7, c7, (1, 7), padding=(0, 3), rngs=rngs)
        self.branch7x7dbl_4 = BasicConv(c7, c7, (7, 1), padding=(3, 0), rngs=rngs)
        self.branch7x7dbl_5 = BasicConv(c7, 192, (1, 7), padding=(0, 3), rngs=rngs)
        self.branch_pool = BasicConv(cin, 192, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nnx.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, cin: int, *, rngs: nnx.Rngs) -> None:
        self.branch3x3_1 = BasicConv(cin, 192, 1, rngs=rngs)
        self.branch3x3_2 = BasicConv(192, 320, 3, stride=2, rngs=rngs)
        self.branch7x7x3_1 = BasicConv(cin, 192, 1, rngs=rngs)
        self.branch7x7x3_2 = BasicConv(192, 192, (1, 7), padding=(0, 3), rngs=rngs)
        self.branch7x7x3_3 = BasicConv(192, 192, (7, 1), padding=(3, 0), rngs=rngs)
        self.branch7x7x3_4 = BasicConv(192, 192, 3, stride=2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for layer in (
            self.branch7x7x3_1,
            self.branch7x7x3_2,
            self.branch7x7x3_3,
            self.branch7x7x3_4,
        ):
            b7 = layer(b7)
        return jnp.concatenate([b3, b7, _max_pool(x, 2)], axis=-1)


class InceptionE(nnx.Module):
    """8x8 block with expanded filter banks (Mixed_7b: avg pool; Mixed_7c: max pool, FID quirk)."""

    def __init__(self, cin: int, *, max_pool_branch: bool, rngs: nnx.Rngs) -> None:
        self.max_pool_branch = max_pool_branch
        self.branch1x1 = BasicConv(cin, 320, 1, rngs=rngs)
        self.branch3x3_1 = BasicConv(cin, 384, 1, rngs=rngs)
        self.branch3x3_2a = BasicConv(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
        self.branch3x3_2b = BasicConv(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
        self.branch3x3dbl_1 = BasicConv(cin, 448, 1, rngs=rngs)
        self.branch3x3dbl_2 = BasicConv(448, 384, 3, padding=1, rngs=rngs)
        self.branch3x3dbl_3a = BasicConv(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
        self.branch3x3dbl_3b = BasicConv(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
        self.branch_pool = BasicConv(cin, 192, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = jnp.concatenate([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], axis=-1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = jnp.concatenate([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], axis=-1)
        pooled = _max_pool(x, 1, pad=1) if self.max_pool_branch else _avg_pool_exclude_pad(x)
        return jnp.concatenate([b1, b3, bd, self.branch_pool(pooled)], axis=-1)


class FIDInceptionV3(nnx.Module):
    """FID InceptionV3 trunk: (N, H, W, 3) in [-1, 1] (H, W >= 75, 299 standard) -> (N, 2048)."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.Conv2d_1a_3x3 = BasicConv(3, 32, 3, stride=2, rngs=rngs)
        self.Conv2d_2a_3x3 = BasicConv(32, 32, 3, rngs=rngs)
        self.Conv2d_2b_3x3 = BasicConv(32, 64, 3, padding=1, rngs=rngs)
        self.Conv2d_3b_1x1 = BasicConv(64, 80, 1, rngs=rngs)
        self.Conv2d_4a_3x3 = BasicConv(80, 192, 3, rngs=rngs)
        self.Mixed_5b = InceptionA(192, 32, rngs=rngs)
        self.Mixed_5c = InceptionA(256, 64, rngs=rngs)
        self.Mixed_5d = InceptionA(288, 64, rngs=rngs)
        self.Mixed_6a = InceptionB(288, rngs=rngs)
        self.Mixed_6b = InceptionC(768, 128, rngs=rngs)
        self.Mixed_6c = InceptionC(768, 160, rngs=rngs)
        self.Mixed_6d = InceptionC(768, 160, rngs=rngs)
        self.Mixed_6e = InceptionC(768, 192, rngs=rngs)
        self.Mixed_7a = InceptionD(768, rngs=rngs)
        self.Mixed_7b = InceptionE(1280, max_pool_branch=False, rngs=rngs)
        self.Mixed_7c = InceptionE(2048, max_pool_branch=True, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = _max_pool(x, 2)
        x = _max_pool(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return jnp.mean(x, axis=(1, 2))


_TORCH_NAMES = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "mean": "running_mean",
    "var": "running_var",
}


def _torch_key(path: tuple[Any, ...]) -> str:
    names = path_names(path)
    return ".".join([*names[:-1], _TORCH_NAMES[names[-1]]])


@functools.cache
def _layout() -> tuple[Any, Any, tuple[tuple[str, tuple[int, ...]], ...]]:
    """(graphdef, state treedef, ((torch key, flax shape), ...)) of :class:`FIDInceptionV3`.

    Built once per process from an abstract model (no parameters materialised).
    """
    abstract = nnx.eval_shape(lambda: FIDInceptionV3(rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    return graphdef, treedef, tuple((_torch_key(p), tuple(v.shape)) for p, v in leaves)


def _torch_shape(key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if key.endswith("conv.weight"):  # HWIO (flax) -> OIHW (torch)
        kh, kw, cin, cout = shape
        return (cout, cin, kh, kw)
    return tuple(shape)


def inception_weight_shapes() -> dict[str, tuple[int, ...]]:
    """Expected weights-file layout: pytorch-fid ``state_dict`` key -> array shape (torch order)."""
    return {key: _torch_shape(key, shape) for key, shape in _layout()[2]}


def _ignored(key: str) -> bool:
    return key.startswith(_IGNORED_PREFIXES) or key.endswith(_IGNORED_SUFFIXES)


def load_inception(path: str | os.PathLike[str]) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` from an ``.npz`` in the pytorch-fid layout (module doc).

    Raises FileNotFoundError for a missing file and ValueError naming any missing, unexpected or
    wrongly shaped array.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Inception weights file not found: {path}")
    graphdef, treedef, layout = _layout()
    with np.load(path) as f:
        given = set(f.files)
        expected = {key for key, _ in layout}
        missing = sorted(expected - given)
        extra = sorted(k for k in given - expected if not _ignored(k))
        if missing or extra:
            raise ValueError(
                f"{path} does not match the FID Inception layout: "
                f"{len(missing)} missing key(s) {missing[:5]}, "
                f"{len(extra)} unexpected key(s) {extra[:5]} (see inception_weight_shapes())"
            )
        arrays = []
        for key, shape in layout:
            arr = np.asarray(f[key], dtype=np.float32)
            want = _torch_shape(key, shape)
            if arr.shape != want:
                raise ValueError(f"{path}: {key} has shape {arr.shape}, expected {want}")
            if key.endswith("conv.weight"):
                arr = arr.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            arrays.append(jnp.asarray(arr))
    return nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, arrays))


@functools.cache
def _forward_fn(graphdef: Any, size: int) -> Any:
    @jax.jit
    def forward(state: Any, images: jax.Array) -> jax.Array:
        n, _, _, c = images.shape
        x = images.astype(jnp.float32)
        if x.shape[1:3] != (size, size):
            x = jax.image.resize(x, (n, size, size, c), "bilinear", antialias=False)
        # Full float32 convolutions (no TF32/bf16 passes on GPUs that default to them).
        with jax.default_matmul_precision("highest"):
            return nnx.merge(graphdef, state)(x)

    return forward


class InceptionFeatureExtractor:
    """FID features (pool3, 2048-d) of images in [-1, 1]; a :class:`FeatureExtractor`.

    weights_path: the ``.npz`` described in the module doc. batch_size: images per forward pass.
    quantize: round images to uint8 levels first, as when FID is computed from saved PNGs.
    image_size: resize target (299 for standard FID; smaller only for quick tests).
    """

    name = "inception"
    feature_dim = NUM_FEATURES

    def __init__(
        self,
        weights_path: str | os.PathLike[str],
        *,
        batch_size: int = 50,
        quantize: bool = True,
        image_size: int = INCEPTION_SIZE,
    ) -> None:
        self.model = load_inception(weights_path)
        self.batch_size = batch_size
        self.quantize = quantize
        self._graphdef, self._state = nnx.split(self.model)
        self._forward = _forward_fn(self._graphdef, int(image_size))

    def features(self, images: Any) -> np.ndarray:
        """images (N, H, W, 1|3) float in [-1, 1] -> float32 (N, 2048); gray is tiled to RGB."""
        x = as_nhwc(np.asarray(images))
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if x.shape[-1] != 3:
            raise ValueError(f"Inception features need 1 or 3 channels, got {x.shape}")
        if self.quantize or x.dtype == np.uint8:
            x = to_uint8(x).astype(np.float32) / 127.5 - 1.0
        out = [
            np.asarray(self._forward(self._state, jnp.asarray(batch)))[:valid]
            for batch, valid in padded_batches(x, self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, NUM_FEATURES), np.float32)
