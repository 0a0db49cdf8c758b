"""folder:PATH — mixed formats and sizes, grayscale, corrupt and truncated files."""

import io
import warnings

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import data, parallel


def _save(path, array, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def _make_folder(root, corrupt=True):
    rng = np.random.default_rng(0)
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255
    _save(root / "a_red.png", red, "PNG")  # 64x48, solid red
    _save(root / "sub" / "b_noise.jpg", rng.integers(0, 256, (80, 100, 3), np.uint8), "JPEG")
    _save(root / "sub" / "deeper" / "c_gray.png", np.full((40, 40), 200, np.uint8), "PNG")
    _save(root / "d_noise.webp", rng.integers(0, 256, (70, 70, 3), np.uint8), "WEBP")
    (root / "notes.txt").write_text("not an image")
    if corrupt:
        (root / "e_corrupt.png").write_bytes(b"this is not a png" * 10)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(buf, format="JPEG")
        (root / "f_truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return root


def _epoch(p, n):
    return np.concatenate([np.asarray(next(p)["x"]) for _ in range(n)])


def test_folder_mixed_sizes_corrupt_counted(tmp_path):
    root = _make_folder(tmp_path / "imgs")
    mesh = parallel.make_mesh(jax.devices()[:1])
    with pytest.warns(RuntimeWarning, match="skipped 2 of 6") as rec:
        p = data.load(f"folder:{root}", batch_size=2, mesh=mesh, seed=0)
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1
    assert p.skipped == 2 and p.num_examples == 4
    # Smallest side 40 -> native 32 (largest power of two <= 40).
    assert (p.native_resolution, p.resolution, p.channels) == (32, 32, 3)
    x = _epoch(p, 2)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    # The solid red PNG: exactly (+1, -1, -1) everywhere.
    red = [i for i in range(4) if np.all(x[i, ..., 0] == 1) and np.all(x[i, ..., 1:] == -1)]
    assert len(red) == 1
    # The grayscale PNG becomes RGB with equal channels (200 -> 200/127.5 - 1).
    gray = [i for i in range(4) if np.allclose(x[i], 200 / 127.5 - 1, atol=1e-6)]
    assert len(gray) == 1
    p.configure(resolution=8)
    assert next(p)["x"].shape == (2, 8, 8, 3)
    p.close()


def test_folder_grayscale_and_mirror(tmp_path):
    root = _make_folder(tmp_path / "imgs", corrupt=False)
    mesh = parallel.make_mesh(jax.devices()[:1])
    p = data.load(f"folder:{root}", batch_size=4, mesh=mesh, grayscale=True, resolution=16)
    assert p.channels == 1 and p.skipped == 0
    x = np.asarray(next(p)["x"])
    assert x.shape == (4, 16, 16, 1)
    # PIL's luminance of pure red: round(0.299 * 255) = 76.
    assert any(np.allclose(im, 76 / 127.5 - 1, atol=1e-6) for im in x)
    p.close()


def test_folder_lazy_equals_cached(tmp_path, monkeypatch):
    root = _make_folder(tmp_path / "imgs", corrupt=False)
    mesh = parallel.make_mesh(jax.devices()[:1])
    cached = data.load(f"folder:{root}", batch_size=2, mesh=mesh, seed=3, mirror=True)
    want = _epoch(cached, 4)
    cached.close()
    monkeypatch.setenv("JAXGAN_DATA_CACHE_MB", "0")  # too big to cache: decode lazily
    lazy = data.load(f"folder:{root}", batch_size=2, mesh=mesh, seed=3, mirror=True)
    np.testing.assert_array_equal(_epoch(lazy, 4), want)
    lazy.close()


def test_folder_lazy_truncated_file_is_replaced(tmp_path, monkeypatch):
    root = _make_folder(tmp_path / "imgs")
    mesh = parallel.make_mesh(jax.devices()[:1])
    monkeypatch.setenv("JAXGAN_DATA_CACHE_MB", "0")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p = data.load(f"folder:{root}", batch_size=5, mesh=mesh)
        assert p.num_examples == 5 and p.skipped == 1  # the header-less file
        x = _epoch(p, 2)
    assert x.shape == (10, 32, 32, 3) and np.isfinite(x).all()
    assert p.skipped == 2  # the truncated JPEG, found while decoding
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 2
    p.close()


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        data.load(f"folder:{tmp_path / 'empty'}", batch_size=8)
    with pytest.raises(ValueError, match="not a directory"):
        data.load(f"folder:{tmp_path / 'missing'}", batch_size=8)
    root = _make_folder(tmp_path / "imgs", corrupt=False)
    with pytest.raises(ValueError, match="resolution"):
        data.load(f"folder:{root}", batch_size=8, resolution=64)
