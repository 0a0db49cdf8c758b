"""Issue 24, items 1 and 2: ``experiments/sample.py`` (sample PNGs and a grid, interpolation GIF
and strip, truncation, one-line refusals that write nothing) and ``SavedRun.export`` (a
multi-platform ``jax.export`` artifact that the README's snippet loads in a process where jaxgan
and Flax cannot be imported, giving the images ``open_run(...).sample`` gives)."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import load_experiment
from PIL import Image

import jaxgan
from jaxgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_PY = os.path.join(ROOT, "experiments", "sample.py")


sample_py = load_experiment("sample")


def _train(config, wd) -> str:
    assert jaxgan.train(config, wd, quiet=True).exit_code == 0
    return wd


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """The main preset's progressive networks, narrow, at one 8x8 stage: 2 steps, with EMA."""
    config = jaxgan.override(
        jaxgan.configs.get("main"), stage_schedule=(8,), kimg_stable=0.008, kimg_total=0,
        batch_per_res={8: 4}, fmap_base=16, fmap_max=8, latent_dim=16, log_every=100,
        sample_every=0, num_devices=1,
    )  # fmt: skip
    return _train(config, str(tmp_path_factory.mktemp("image") / "run"))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 2-step toy run (2-D points on the ring), no EMA."""
    config = jaxgan.override(jaxgan.configs.get("toy-wgan-gp"), steps=2, hidden=(16, 16),
                             batch_size=16, log_every=100, sample_every=0, num_devices=1)  # fmt: skip
    return _train(config, str(tmp_path_factory.mktemp("toy") / "run"))


def _files(root) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs} | {
        os.path.join(d, s) for d, ss, _ in os.walk(root) for s in ss
    }


# --- truncation: a pure function of a key ---


@pytest.mark.parametrize("threshold", [0.3, 1.0, 2.0])
def test_truncate_bounds_outside_entries_and_keeps_inside_ones(threshold):
    import jax

    z = np.random.default_rng(0).standard_normal((400, 32)).astype(np.float32) * 1.5
    out = np.asarray(sample_py.truncate(jax.random.key(1), z, threshold))
    inside = np.abs(z) <= threshold
    assert out.shape == z.shape and out.dtype == np.float32
    assert np.all(np.abs(out) <= threshold)
    np.testing.assert_array_equal(out[inside], z[inside])  # untouched
    assert np.all(out[~inside] != z[~inside])
    np.testing.assert_array_equal(out, sample_py.truncate(jax.random.key(1), z, threshold))
    # The resampled entries follow the standard normal restricted to [-T, T]: against numpy's
    # rejection sampling (resample until inside), an independent implementation.
    ref = np.random.default_rng(2).standard_normal(400_000)
    ref = ref[np.abs(ref) <= threshold]
    resampled = out[~inside]
    assert abs(resampled.mean()) < 0.1 * threshold
    assert abs(resampled.std() / ref.std() - 1) < 0.1
    np.testing.assert_array_equal(np.asarray(sample_py.truncate(jax.random.key(1), z, 0.0)), z)


# --- export: loaded with jax alone ---

_BLOCKER = """
import importlib, sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jaxgan", "flax"):
            raise ImportError(f"{name} is not importable in this test")

sys.meta_path.insert(0, _Blocked())
for name in ("jaxgan", "flax"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable")
"""

_EACH = """
import os
import numpy as np

for folder in sys.argv[1:]:
    os.chdir(folder)
    exec(compile(SNIPPET, "README snippet", "exec"))
    np.save("z.npy", z)
    np.save("images.npy", images)
    np.save("images3.npy", np.asarray(generator.call(z[:3])))  # another batch size
assert not [m for m in sys.modules if m.split(".")[0] in ("jaxgan", "flax")]
print("loaded", len(sys.argv) - 1)
"""


def _readme_snippet() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    return next(b for b in blocks if "jax.export.deserialize" in b)


def test_export_loads_with_jax_alone_and_matches_sample(image_run, toy_run, tmp_path):
    import jax

    image = jaxgan.open_run(image_run)
    assert image.config.optim.ema > 0 and not image.phase.fading
    # The same weights at a fade into 8x8 (alpha 0.3): the alpha is baked in.
    fading = dataclasses.replace(image, phase=image.phase._replace(fading=True, alpha=0.3),
                                 samplers={})  # fmt: skip
    toy = jaxgan.open_run(toy_run)
    runs = {"image": image, "fading": fading, "toy": toy}
    for name, run in runs.items():
        os.makedirs(tmp_path / name)
        meta = run.export(str(tmp_path / name / "generator.jax"))
        with open(tmp_path / name / "generator.jax", "rb") as f:
            exported = jax.export.deserialize(bytearray(f.read()))
        assert tuple(exported.platforms) == ("cpu", "cuda", "tpu")
        with open(tmp_path / name / "generator.jax.json") as f:
            assert json.load(f) == meta
        assert meta["platforms"] == ["cpu", "cuda", "tpu"] and meta["step"] == run.step
        assert meta["latent_dim"] == run.config.model.latent_dim
        assert (
            meta["config"] == json.loads(json.dumps(run.config.to_json()))
            and meta["jax_version"] == jax.__version__
        )
        assert meta["size_bytes"] == os.path.getsize(tmp_path / name / "generator.jax")
    assert meta["output"]["shape"] == ["n", 2]
    m = json.load(open(tmp_path / "fading" / "generator.jax.json"))
    assert m["output"] == {**m["output"], "shape": ["n", 8, 8, 1], "layout": "NHWC", "range": [-1, 1]}  # fmt: skip
    assert m["phase"] == {"resolution": 8, "fading": True, "alpha": 0.3} and m["generator"] == "ema"

    code = _BLOCKER + f"SNIPPET = {_readme_snippet()!r}\n" + _EACH
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", code, *(str(tmp_path / n) for n in runs)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0 and "loaded 3" in out.stdout, out.stderr[-3000:]
    for name, run in runs.items():
        z = np.load(tmp_path / name / "z.npy")
        images = np.load(tmp_path / name / "images.npy")
        expected = run.sample(z=z)
        assert images.shape == expected.shape
        np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(np.load(tmp_path / name / "images3.npy"), expected[:3],
                                   rtol=1e-5, atol=1e-6, err_msg=name)  # fmt: skip
    z = np.load(tmp_path / "fading" / "z.npy")
    assert np.abs(fading.sample(z=z) - image.sample(z=z)).max() > 1e-4  # alpha is in the artifact


def test_export_refuses_a_directory_and_writes_nothing(image_run, tmp_path):
    run = jaxgan.open_run(image_run)
    with pytest.raises(ConfigError, match="is a directory"):
        run.export(str(tmp_path))
    with pytest.raises(ConfigError, match="platforms"):
        run.export(str(tmp_path / "g.jax"), platforms=("gpu",))
    assert os.listdir(tmp_path) == []


# --- sample.py ---


def test_num_writes_n_pngs_and_a_grid_of_the_samples(image_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert sample_py.main([f"--workdir={image_run}", "--num=5", f"--out={out}", "--seed=3"]) == 0
    names = sorted(os.listdir(out))
    assert names == sorted(["grid.png", *(f"sample_{i:04d}.png" for i in range(5))])
    x = np.asarray(jaxgan.open_run(image_run).sample(5, seed=3), np.float32)  # the same latents
    u8 = np.clip(np.rint(x * np.float32(127.5) + np.float32(127.5)), 0, 255).astype(np.uint8)
    for i in range(5):
        png = np.asarray(Image.open(out / f"sample_{i:04d}.png"))  # 8x8 grayscale
        np.testing.assert_array_equal(png, u8[i, ..., 0])
    # 5 tiles of 8x8 in 3 columns and 2 rows, 1-px white gaps (19x28), shown 9x larger (256 px).
    grid = np.full((19, 28, 3), 255, np.uint8)
    for i in range(5):
        r, c = divmod(i, 3)
        grid[1 + 9 * r : 9 + 9 * r, 1 + 9 * c : 9 + 9 * c] = u8[i]
    want = grid.repeat(9, axis=0).repeat(9, axis=1)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "grid.png")), want)
    said = capsys.readouterr().out
    assert "wrote 5 samples (8x8x1) to" in said and str(out / "grid.png") in said


def test_interpolate_writes_an_animated_gif_and_a_strip(image_run, tmp_path, capsys):
    from jaxgan import samples

    out = tmp_path / "out"
    argv = [f"--workdir={image_run}", "--interpolate=2x4", f"--out={out}", "--seed=1"]
    assert sample_py.main(argv) == 0
    assert sorted(os.listdir(out)) == ["interpolation.gif", "interpolation.png"]
    strip = np.asarray(Image.open(out / "interpolation.png").convert("RGB"))
    run = jaxgan.open_run(image_run)
    expected = samples.upscale(samples.image_grid(run.interpolate(4, 2, seed=1), cols=4))
    np.testing.assert_array_equal(strip, expected)  # the latents of SavedRun.interpolate
    gif = Image.open(out / "interpolation.gif")
    assert gif.n_frames == 4 + 2 and gif.info.get("loop") == 0  # forth and back, looping
    assert "interpolation.gif" in capsys.readouterr().out


def test_toy_num_writes_a_scatter_and_interpolate_is_refused(toy_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert sample_py.main([f"--workdir={toy_run}", "--num=50", f"--out={out}"]) == 0
    assert os.listdir(out) == ["scatter.png"]
    capsys.readouterr()
    before = _files(tmp_path) | _files(toy_run)
    assert sample_py.main([f"--workdir={toy_run}", "--interpolate=2x3", f"--out={out}/b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--interpolate needs an image run" in err, err
    assert _files(tmp_path) | _files(toy_run) == before


@pytest.mark.parametrize(
    "args, says",
    [
        (["--num=0"], "argument --num: must be an int >= 1, got '0'"),
        (["--interpolate=3x"], "argument --interpolate: must be ROWSxSTEPS"),
        (["--truncation=-1"], "argument --truncation: must be a number >= 0"),
        (["--truncation=nan"], "argument --truncation: must be a number >= 0"),
        (["--seed=-1"], "argument --seed: must be an int in 0..2**32-1"),
        (["--out=FILE"], "is a file; give a directory"),
        (["--export=DIR"], "--export=DIR is a directory; give a file name"),
        (["--checkpoint=99"], "checkpoint step 99 does not exist"),
        (["--workdir=EMPTY"], "EMPTY"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(image_run, tmp_path, capsys, args, says):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR").mkdir()
    (tmp_path / "EMPTY").mkdir()
    argv = [f"--workdir={image_run}", f"--out={tmp_path / 'out'}", "--num=2"]
    argv += [re.sub(r"(FILE|DIR|EMPTY)", lambda m: str(tmp_path / m.group(1)), a) for a in args]
    before = _files(tmp_path) | _files(image_run)
    assert sample_py.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sample.py: error: "), err
    assert re.sub(r"(DIR|EMPTY)", lambda m: str(tmp_path / m.group(1)), says) in err, err
    assert _files(tmp_path) | _files(image_run) == before


def test_the_entry_point_refuses_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, SAMPLE_PY, f"--workdir={tmp_path}", "--interpolate=0x4"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert out.returncode == 2 and out.stdout == "", out.stdout + out.stderr
    assert (
        out.stderr.count("\n") == 1 and "argument --interpolate: must be ROWSxSTEPS" in out.stderr
    )
    assert os.listdir(tmp_path) == []
