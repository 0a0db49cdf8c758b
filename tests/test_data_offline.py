"""Offline data that ships in packages: digits, mnist5k, stacked_mnist; box downsampling."""

import collections

import jax
import numpy as np
import pytest

from jaxgan import data, parallel
from jaxgan.data import offline


def _to_uint8(x):
    """Invert the [0, 255] -> [-1, 1] scaling exactly."""
    return np.rint((np.asarray(x, np.float64) + 1.0) * 127.5).astype(np.uint8)


def test_digits_counts_shapes_range():
    images, labels = offline.digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert images.max() == 16 and images.min() == 0
    p = data.load("digits", batch_size=64, labels=True, seed=1)
    assert (p.num_examples, p.native_resolution, p.resolution, p.channels) == (1797, 8, 8, 1)
    b = next(p)
    x = np.asarray(b["x"])
    assert x.shape == (64, 8, 8, 1) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    # 0..16 maps to -1..1 in steps of 1/8: every value is a digits value.
    v = (x + 1) * 8
    np.testing.assert_allclose(v, np.rint(v), atol=1e-5)
    # Each image in the batch is a digits image with its own label.
    table = {images[i].tobytes(): labels[i] for i in range(len(images))}
    for img, lab in zip(np.rint(v).astype(np.uint8)[..., 0], np.asarray(b["label"]), strict=True):
        assert table[img.tobytes()] == lab
    p.close()


def test_mnist5k_epoch_is_a_permutation_and_reshuffled():
    images, labels = offline.mnist5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    p = data.load("mnist5k", batch_size=1000, labels=True, seed=3)
    assert (p.num_examples, p.native_resolution, p.channels) == (5000, 32, 1)
    seen, seen_labels, order = [], [], []
    for _ in range(5):
        b = next(p)
        x = np.asarray(b["x"])
        assert x.shape == (1000, 32, 32, 1) and x.min() >= -1 and x.max() <= 1
        # 28x28 padded to 32x32 with the background (-1).
        assert (x[:, :2] == -1).all() and (x[:, -2:] == -1).all()
        assert (x[:, :, :2] == -1).all() and (x[:, :, -2:] == -1).all()
        u = _to_uint8(x)[:, 2:30, 2:30, 0]
        seen.extend(u[i].tobytes() for i in range(len(u)))
        seen_labels.extend(np.asarray(b["label"]).tolist())
    # One epoch = every source image exactly once, with its own label.
    want = collections.Counter(images[i].tobytes() for i in range(5000))
    assert collections.Counter(seen) == want
    assert np.bincount(seen_labels, minlength=10).tolist() == [500] * 10
    source_label = {images[i].tobytes(): labels[i] for i in range(5000)}
    assert all(source_label[s] == lab for s, lab in zip(seen, seen_labels, strict=True))
    order = seen
    # The next epoch visits the same images in another order.
    nxt = _to_uint8(next(p)["x"])[:, 2:30, 2:30, 0]
    assert [nxt[i].tobytes() for i in range(1000)] != order[:1000]
    p.close()


def test_stacked_mnist_labels_match_channels():
    images, labels = offline.mnist5k()
    source_labels = collections.defaultdict(set)
    for i in range(len(images)):
        source_labels[images[i].tobytes()].add(int(labels[i]))
    p = data.load("stacked_mnist", batch_size=64, labels=True, seed=2)
    assert p.channels == 3 and p.num_examples == data.STACKED_MNIST_SIZE
    b = next(p)
    x, lab = np.asarray(b["x"]), np.asarray(b["label"])
    assert x.shape == (64, 32, 32, 3) and lab.shape == (64, 3) and lab.dtype == np.int32
    u = _to_uint8(x)[:, 2:30, 2:30]
    modes = set()
    for i in range(64):
        for c in range(3):
            assert lab[i, c] in source_labels[u[i, :, :, c].tobytes()]
        modes.add(int(lab[i, 0] * 100 + lab[i, 1] * 10 + lab[i, 2]))
    assert len(modes) > 50  # 64 draws from 1,000 modes rarely collide
    p.close()
    # The offline helper builds the same kind of images from the same index table.
    imgs, labs = offline.stacked_mnist(5, seed=0)
    idx = offline.stacked_mnist_indices(5, seed=0)
    for c in range(3):
        np.testing.assert_array_equal(imgs[..., c], images[idx[:, c]])
        np.testing.assert_array_equal(labs[:, c], labels[idx[:, c]])


def _box_reference(x, r):
    """Loop-based area average of (N, S, S, C) to (N, r, r, C), float64."""
    n, s, _, c = x.shape
    f = s // r
    out = np.zeros((n, r, r, c))
    for i in range(r):
        for j in range(r):
            out[:, i, j] = (
                x[:, i * f : (i + 1) * f, j * f : (j + 1) * f].astype(np.float64).mean(axis=(1, 2))
            )
    return out


def test_box_downsample_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for r in (32, 16, 8, 4, 1):
        got = data.box_downsample(x, r)
        assert got.dtype == np.float32 and got.shape == (3, r, r, 3)
        np.testing.assert_allclose(got, _box_reference(x, r), rtol=0, atol=1e-4)
    with pytest.raises(ValueError):
        data.box_downsample(x, 12)


def test_pipeline_resolutions_are_box_downsampled():
    mesh = parallel.make_mesh(jax.devices()[:1])
    full = data.load("mnist5k", batch_size=32, seed=7, mesh=mesh, prefetch=0)
    x32 = np.asarray(next(full)["x"], np.float64)
    for r in (16, 8, 4):
        low = data.load("mnist5k", batch_size=32, seed=7, resolution=r, mesh=mesh)
        xr = np.asarray(next(low)["x"])
        assert xr.shape == (32, r, r, 1)
        # Scaling is affine, so downsampling the [-1, 1] images gives the same result.
        np.testing.assert_allclose(xr, _box_reference(x32, r), atol=1e-5)
        low.close()
    full.close()


def test_resolution_errors():
    with pytest.raises(ValueError, match="resolution"):
        data.load("mnist5k", batch_size=8, resolution=64)
    with pytest.raises(ValueError, match="resolution"):
        data.load("digits", batch_size=8, resolution=6)
    p = data.load("digits", batch_size=8)
    with pytest.raises(ValueError, match="resolution"):
        p.configure(resolution=16)
    p.close()
