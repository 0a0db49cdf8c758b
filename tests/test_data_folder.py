"""folder:PATH — mixed formats and sizes, grayscale, corrupt and truncated files, every pixel mode
Pillow opens (16-bit, 32-bit, float, alpha, palettes, CMYK, ...), EXIF orientation."""

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


# --- Pixel modes: every mode Pillow opens becomes 8-bit RGB / grey by a stated rule, or is
# refused with one warning. Expected values are computed here with numpy from the source arrays.

_HW = (8, 8)  # square power of two: the folder's native size, so pixels are compared unresized


def _over_black(color, alpha):
    """Reference alpha compositing onto black: round(c * a / 255), (H, W, C) uint8."""
    c = color.astype(np.float64) if color.ndim == 3 else color.astype(np.float64)[..., None]
    return np.round(c * alpha.astype(np.float64)[..., None] / 255).astype(np.uint8)


def _luma(rgb):
    """ITU-R 601-2 luminance (H, W, 1) of (H, W, 3), rounded."""
    return np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None]


def _palette_image(rng, n_colors, transparency=None):
    idx = rng.integers(0, n_colors, _HW).astype(np.uint8)
    pal = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette(pal.tobytes())
    if transparency is not None:
        img.info["transparency"] = transparency
    return img, pal[idx], idx


def _png16_rgb(arr):
    """A 16-bit-per-channel RGB PNG (colour type 2, depth 16), written by hand: Pillow cannot."""
    import struct
    import zlib

    h, w, _ = arr.shape
    rows = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))
    chunk = lambda t, d: (
        struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    )
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _mode_case(name, rng):
    """(file bytes, file suffix, mode Pillow opens it in, expected uint8 (H, W, C), atol).

    C is 1 for modes that are grey by nature (expected grey; RGB output repeats it) and 3 for
    colour modes (expected RGB; grey output is its luminance). Modes PNG cannot hold are written
    as TIFF under a .png name: Pillow opens files by their content, not their name.
    """
    u8 = lambda *s: rng.integers(0, 256, (*_HW, *s)).astype(np.uint8)
    buf = io.BytesIO()
    save = lambda img, fmt="PNG", **kw: img.save(buf, format=fmt, **kw)
    suffix, atol = ".png", 0
    if name == "1":
        bits = rng.random(_HW) > 0.5
        save(Image.fromarray(bits))
        want = (bits * 255).astype(np.uint8)[..., None]
    elif name == "L":
        g = u8()
        save(Image.fromarray(g))
        want = g[..., None]
    elif name == "L+tRNS":  # grey with a transparent colour key: composited onto black
        g = u8()
        g[:2] = 7
        img = Image.fromarray(g)
        img.info["transparency"] = 7
        save(img)
        want = np.where(g == 7, 0, g).astype(np.uint8)[..., None]
        name = "L"
    elif name == "LA":
        g, a = u8(), u8()
        save(Image.fromarray(np.stack([g, a], -1), "LA"))
        want = _over_black(g, a)
    elif name == "P":
        img, want, _ = _palette_image(rng, 256)
        save(img)
    elif name in ("P+alpha", "PA"):  # per-entry palette alpha (PNG tRNS) / a PA TIFF
        alpha = np.array([0, 80, 200, 255], np.uint8)
        img, rgb, idx = _palette_image(rng, 4, alpha.tobytes())
        save(img) if name == "P+alpha" else save(img.convert("PA"), "TIFF")
        want = _over_black(rgb, alpha[idx])
        name = name[0] + ("A" if name == "PA" else "")
    elif name == "P+index":  # one transparent palette index
        img, rgb, idx = _palette_image(rng, 4, 2)
        save(img)
        want = np.where((idx == 2)[..., None], 0, rgb).astype(np.uint8)
        name = "P"
    elif name == "RGB":
        want = u8(3)
        save(Image.fromarray(want))
    elif name == "RGB+tRNS":  # RGB with a transparent colour key
        rgb = u8(3)
        rgb[:3] = (10, 20, 30)
        img = Image.fromarray(rgb)
        img.info["transparency"] = (10, 20, 30)
        save(img)
        want = np.where(np.all(rgb == (10, 20, 30), -1, keepdims=True), 0, rgb).astype(np.uint8)
        name = "RGB"
    elif name == "RGBA":
        rgb, a = u8(3), u8()
        save(Image.fromarray(np.concatenate([rgb, a[..., None]], -1), "RGBA"))
        want = _over_black(rgb, a)
    elif name == "RGB16":  # Pillow reads 16-bit RGB PNGs as RGB (high bytes): within 1 of /257
        v = rng.integers(0, 65536, (*_HW, 3))
        buf.write(_png16_rgb(v))
        want, atol, name = np.round(v / 257).astype(np.uint8), 1, "RGB"
    elif name in ("I;16", "I;16B", "I;16+tRNS"):
        v = rng.integers(0, 65536, _HW)
        if name == "I;16B":
            save(Image.frombytes("I;16B", _HW[::-1], v.astype(">u2").tobytes()), "TIFF")
        else:
            key = int(v[0, 0]) if name == "I;16+tRNS" else None  # a transparent grey level
            save(Image.fromarray(v.astype(np.uint16)), transparency=key)
        want = np.round(v / 257).astype(np.uint8)[..., None]
        if name == "I;16+tRNS":
            want[v == v[0, 0]] = 0
            name = "I;16"
    elif name.startswith("I/"):  # 32-bit int: range chosen by the image's maximum
        top = {"I/8": 255, "I/16": 65535, "I/32": 2**31 - 1}[name]
        v = rng.integers(-300, top, _HW, endpoint=True)
        v[0, 0] = top
        save(Image.fromarray(v.astype(np.int32)), "TIFF")
        want = np.round(np.clip(v, 0, None) * (255 / top)).astype(np.uint8)[..., None]
        name = "I"
    elif name == "F/unit":  # values in [0, 1]: scaled by 255
        v = rng.random(_HW).astype(np.float32)
        save(Image.fromarray(v), "TIFF")
        want = np.round(v.astype(np.float64) * 255).astype(np.uint8)[..., None]
        name = "F"
    elif name == "F/wide":  # anything else: clipped to [0, 255]; NaN is 0
        v = rng.uniform(-100, 400, _HW).astype(np.float32)
        v[0, :2] = np.nan, 3.5
        save(Image.fromarray(v), "TIFF")
        want = np.round(np.clip(np.nan_to_num(v.astype(np.float64)), 0, 255)).astype(np.uint8)
        want, name = want[..., None], "F"
    elif name == "CMYK":
        cmyk = u8(4).astype(np.float64)
        save(Image.frombytes("CMYK", _HW[::-1], cmyk.astype(np.uint8).tobytes()), "TIFF")
        want = np.round((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255).astype(np.uint8)
        atol = 1
    elif name == "CMYK/jpeg":  # flat colour: JPEG keeps it within a couple of levels
        cmyk = np.broadcast_to(np.array([30, 90, 150, 40], np.uint8), (*_HW, 4))
        save(Image.frombytes("CMYK", _HW[::-1], cmyk.tobytes()), "JPEG", quality=100)
        c = cmyk.astype(np.float64)
        want = np.round((255 - c[..., :3]) * (255 - c[..., 3:]) / 255).astype(np.uint8)
        suffix, atol, name = ".jpg", 3, "CMYK"
    elif name == "YCbCr":
        ycc = u8(3)
        save(Image.frombytes("YCbCr", _HW[::-1], ycc.tobytes()), "TIFF")
        y, cb, cr = np.moveaxis(ycc.astype(np.float64) - (0, 128, 128), -1, 0)
        rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)
        want, atol = np.round(np.clip(rgb, 0, 255)).astype(np.uint8), 1
    else:
        raise AssertionError(name)
    return buf.getvalue(), suffix, name, want, atol


_FILE_MODES = [
    "1", "L", "L+tRNS", "LA", "P", "P+alpha", "P+index", "PA", "RGB", "RGB+tRNS", "RGBA",
    "RGB16", "I;16", "I;16+tRNS", "I;16B", "I/8", "I/16", "I/32", "F/unit", "F/wide", "CMYK",
    "CMYK/jpeg", "YCbCr",
]  # fmt: skip


def _check_converted(out, want, atol, grayscale):
    if grayscale:
        ref, tol = (want, atol) if want.shape[-1] == 1 else (_luma(want), atol + 1)
    else:
        ref, tol = np.broadcast_to(want, (*_HW, 3)), atol
    assert out.shape == ref.shape and out.dtype == np.uint8
    np.testing.assert_allclose(out.astype(int), ref.astype(int), rtol=0, atol=tol)


@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("case", _FILE_MODES)
def test_folder_pixel_mode_converted(tmp_path, case, grayscale):
    from jaxgan.data.folder import folder_source

    data_bytes, suffix, mode, want, atol = _mode_case(case, np.random.default_rng(7))
    path = tmp_path / f"img{suffix}"
    path.write_bytes(data_bytes)
    with Image.open(path) as img:
        assert img.mode == mode  # the file really reaches the mode under test
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        src = folder_source(str(tmp_path), grayscale=grayscale)
        out = src.fetch(np.array([0]), False)[0][0]
    assert not [str(w.message) for w in rec]  # converted silently, nothing skipped
    assert src.skipped == 0
    _check_converted(out, want, atol, grayscale)


@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("mode", ["HSV", "RGBX", "RGBa", "La"])
def test_pixel_mode_converted_in_memory(mode, grayscale):
    """Modes no file format hands back here, converted from an in-memory image."""
    import colorsys

    from jaxgan.data.images import pil_to_uint8

    rng = np.random.default_rng(3)
    bands = len(mode)
    raw = rng.integers(0, 256, (*_HW, bands)).astype(np.uint8)
    img = Image.frombytes(mode, _HW[::-1], raw.tobytes())
    atol = 0
    if mode == "HSV":
        hsv = raw.reshape(-1, 3) / 255
        want = np.array([colorsys.hsv_to_rgb(*p) for p in hsv]).reshape(*_HW, 3) * 255
        want, atol = np.round(want).astype(np.uint8), 1
    elif mode == "RGBX":
        want = raw[..., :3]
    else:  # premultiplied alpha: the colour bands are already composited onto black
        want = raw[..., :-1]
    _check_converted(pil_to_uint8(img, grayscale), want, atol, grayscale)


def test_folder_16bit_png_scaled_not_saturated(tmp_path, monkeypatch):
    """A 16-bit grey PNG is scaled by 255/65535 (cached and lazy paths, through the pipeline)."""
    v = np.random.default_rng(0).integers(0, 65536, (32, 32)).astype(np.uint16)
    Image.fromarray(v).save(tmp_path / "depth.png")
    want = np.round(v / 257).astype(np.uint8)
    mesh = parallel.make_mesh(jax.devices()[:1])
    for cache_mb in (None, "0"):
        if cache_mb is not None:
            monkeypatch.setenv("JAXGAN_DATA_CACHE_MB", cache_mb)
        for grayscale in (True, False):
            p = data.load(f"folder:{tmp_path}", batch_size=1, mesh=mesh, grayscale=grayscale)
            x = np.asarray(next(p)["x"])[0]
            p.close()
            got = np.rint((x.astype(np.float64) + 1) * 127.5).astype(np.uint8)
            assert (got == 255).mean() < 0.01  # was 0.995: everything above 255 clipped
            np.testing.assert_array_equal(got, np.repeat(want[..., None], x.shape[-1], -1))


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("kind", ["png", "webp", "png16", "jpeg"])
def test_folder_exif_orientation_applied(tmp_path, kind, orientation):
    from jaxgan.data.folder import folder_source

    rng = np.random.default_rng(orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    if kind == "png16":
        v = rng.integers(0, 65536, (16, 16))
        img, src, atol = Image.fromarray(v.astype(np.uint16)), np.round(v / 257)[..., None], 0
    elif kind == "jpeg":  # four flat 8x8 quadrants: one JPEG block each, nearly lossless
        quad = rng.integers(0, 256, (2, 2, 3))
        src = np.repeat(np.repeat(quad, 8, 0), 8, 1)
        img, atol = Image.fromarray(src.astype(np.uint8)), 3
    else:
        src = rng.integers(0, 256, (16, 16, 3))
        img, atol = Image.fromarray(src.astype(np.uint8)), 0
    kw = {"jpeg": {"quality": 100, "subsampling": 0}, "webp": {"lossless": True}}.get(kind, {})
    fmt = {"png16": "PNG"}.get(kind, kind.upper())
    img.save(tmp_path / f"img.{fmt.lower()}", format=fmt, exif=exif, **kw)
    # Orientation 3: rotate 180; 6: the stored image is turned 90 degrees clockwise to show it;
    # 8: 90 degrees counter-clockwise.
    want = np.rot90(src, {3: 2, 6: -1, 8: 1}[orientation])
    out = folder_source(str(tmp_path), grayscale=kind == "png16").fetch(np.array([0]), False)[0]
    np.testing.assert_allclose(out[0].astype(int), want.astype(int), rtol=0, atol=atol)
    assert np.abs(out[0].astype(int) - src.astype(int)).max() > 2 * atol + 10  # not unrotated


def _lab_tiff(rng):
    buf = io.BytesIO()
    raw = rng.integers(0, 256, (*_HW, 3)).astype(np.uint8).tobytes()
    Image.frombytes("LAB", _HW[::-1], raw).save(buf, format="TIFF")
    return buf.getvalue()


@pytest.mark.parametrize("lazy", [False, True], ids=["cached", "lazy"])
def test_folder_unconverted_mode_refused_with_one_warning(tmp_path, lazy):
    from jaxgan.data.folder import folder_source

    rng = np.random.default_rng(0)
    _save(tmp_path / "a_rgb.png", rng.integers(0, 256, (*_HW, 3), np.uint8), "PNG")
    for name in ("b_lab.png", "sub/c_lab.png"):  # LAB TIFFs: Pillow opens by content
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(_lab_tiff(rng))
    (tmp_path / "d_corrupt.png").write_bytes(b"not a png" * 10)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        src = folder_source(str(tmp_path), cache_bytes=0 if lazy else None)
        out = src.fetch(np.array([0, 0]), False)[0]
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1, msgs  # one warning for the whole folder, not one per file
    assert "skipped 3 of 4" in msgs[0] and "LAB: 2" in msgs[0] and "b_lab.png" in msgs[0]
    assert "d_corrupt.png" in msgs[0]
    assert src.num_examples == 1 and src.skipped == 3 and out.shape == (2, *_HW, 3)


def test_folder_only_unconverted_modes_is_an_error(tmp_path):
    from jaxgan.data.folder import folder_source
    from jaxgan.data.images import pil_to_uint8
    from jaxgan.errors import DataError

    (tmp_path / "x.png").write_bytes(_lab_tiff(np.random.default_rng(0)))
    with pytest.raises(DataError, match=r"none of the 1 image files .*LAB"):
        folder_source(str(tmp_path))
    with Image.open(tmp_path / "x.png") as img, pytest.raises(DataError, match="mode LAB"):
        pil_to_uint8(img, grayscale=False)
