"""``experiments/evaluate.py --real folder:A --fake folder:B`` (and ``--workdir RUN --real
folder:A``), issue 24 item 3: metrics of two image sets against independent references (the
same images give SWD 0 and FID 0; the FID agrees with a scipy ``sqrtm`` FID of the classifier's
features of the original arrays; a 2x nearest-upsampled copy is resized back to the very same
pixels), the real-vs-real reference, one warning line for unreadable files and their count, and
bad input as one line with exit status 2."""

import os
import types

import numpy as np
import pytest
from conftest import load_experiment
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 160  # digits per folder: more than the classifier's 128 features, so covariances are full


@pytest.fixture(scope="module")
def evaluate():
    return load_experiment("evaluate").main


@pytest.fixture(scope="module")
def digits():
    """Two disjoint sets of N real mnist5k digits (uint8, 28x28), drawn at random (seed 0)."""
    from jaxgan.data.offline import mnist5k

    images, _ = mnist5k()
    idx = np.random.default_rng(0).permutation(len(images))[: 2 * N]
    return images[idx[:N]], images[idx[N:]]


def _write(folder, images) -> str:
    """PNG files 000.png, 001.png, ... of uint8 (N, H, W) or (N, H, W, 3) images; 'folder:PATH'."""
    os.makedirs(folder, exist_ok=True)
    for i, x in enumerate(images):
        Image.fromarray(x).save(os.path.join(folder, f"{i:03d}.png"))
    return f"folder:{folder}"


def _run(evaluate, capsys, *args) -> tuple[int, dict, str, str]:
    """Exit status, the printed table as {key: value string}, stdout and stderr."""
    code = evaluate(list(args))
    out, err = capsys.readouterr()
    table = {}
    for line in out.splitlines():
        key, _, value = line.partition("  ")
        if value and " " not in key and not key.endswith(":"):
            table[key] = value.strip()
    return code, table, out, err


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's formula: scipy.linalg.sqrtm of the covariance product (float64)."""
    from scipy import linalg

    a, b = a.astype(np.float64), b.astype(np.float64)
    keep = (a.std(0) > 0) | (b.std(0) > 0)  # dead ReLU units: 0 in both, nothing to compare
    a, b = a[:, keep], b[:, keep]
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_digits_against_themselves_a_second_set_and_noise(evaluate, digits, tmp_path, capsys):
    from jaxgan.metrics.classifier import load_digit_classifier
    from jaxgan.metrics.swd import sliced_wasserstein

    first, second = digits
    a = _write(tmp_path / "a", first)
    same = _write(tmp_path / "same", first)
    b = _write(tmp_path / "b", second)
    noise = np.random.default_rng(1).integers(0, 256, first.shape, dtype=np.uint8)
    z = _write(tmp_path / "noise", noise)
    flags = ["--features=digits", "--metrics=swd,fid,pr,modes"]

    # The same images: SWD exactly 0 (identical patch descriptors), FID 0 to rounding, PR 1.
    code, t, out, err = _run(evaluate, capsys, "--real", a, "--fake", same, *flags)
    assert code == 0, err
    assert t["features"] == "digit_classifier" and t["resolution"] == "28x28 grey"
    assert t["num_images/real"] == t["num_images/fake"] == str(N) and t["skipped/fake"] == "0"
    assert float(t["swd/mean"]) == 0.0
    assert abs(float(t["fid"])) < 1e-6 * float(t["fid/real_vs_real"]) + 1e-6
    assert float(t["pr/precision"]) == float(t["pr/recall"]) == 1.0
    assert t["modes/modes_captured"] == t["modes/modes_captured_real"] == "10"
    assert "two disjoint random halves A, B of the real set (80 images each)" in out
    assert t["num_images/half"] == "80" and float(t["fid/fake_vs_half"]) > 0

    # Another set of real digits: the FID of pytorch-fid's formula on the classifier's features
    # of the original arrays (the PNGs are lossless; 28x28 is padded to 32x32 as the dataset),
    # and the SWD of the arrays themselves.
    code, t, _, err = _run(evaluate, capsys, "--real", a, "--fake", b, *flags)
    assert code == 0, err
    clf = load_digit_classifier()
    ref = _fid_scipy(clf.features(second), clf.features(first))
    assert float(t["fid"]) == pytest.approx(ref, rel=1e-3)
    swd = sliced_wasserstein(second, first, 0)["mean"]
    assert float(t["swd/mean"]) == pytest.approx(swd, rel=1e-4)  # the table has 5 digits
    real_digits = t

    # Like for like (80 images a side, against the same half of the real set): another real
    # set is within the noise floor's range, noise far above it.
    for key in ("fid", "swd"):
        floor, fake_half = float(t[f"{key}/real_vs_real"]), float(t[f"{key}/fake_vs_half"])
        assert 0.5 * floor < fake_half < 2 * floor, key
    real_digits = t
    code, t, _, err = _run(evaluate, capsys, "--real", a, "--fake", z, *flags)
    assert code == 0, err
    assert t["fid/real_vs_real"] == real_digits["fid/real_vs_real"]  # the same real halves
    for key in ("fid", "swd"):
        assert float(t[f"{key}/fake_vs_half"]) > 5 * float(t[f"{key}/real_vs_real"]), key
    assert float(t["fid"]) > 20 * float(real_digits["fid"])
    # The noise collapses to one point of feature space: no real digit lies near the fakes.
    assert float(t["pr/recall"]) == 0.0 < 0.5 < float(real_digits["pr/recall"])
    assert t["modes/modes_captured"] == "1"


def test_a_larger_fake_set_is_resized_to_the_real_resolution(evaluate, digits, tmp_path, capsys):
    """RGB 32x32 real images; the fake ones are the same at 64x64 (each pixel repeated 2x2), so
    the antialiased (box) resize back gives the very same pixels: SWD 0, MS-SSIM the same."""
    first, _ = digits
    rng = np.random.default_rng(2)
    colour = rng.uniform(0.3, 1.0, (64, 1, 1, 3))
    rgb = np.pad(first[:64], ((0, 0), (2, 2), (2, 2)))[..., None] * colour
    rgb = np.clip(rgb + rng.integers(0, 40, (64, 1, 1, 3)), 0, 255).astype(np.uint8)
    real = _write(tmp_path / "real", rgb)
    fake = _write(tmp_path / "fake", rgb.repeat(2, axis=1).repeat(2, axis=2))
    code, t, out, err = _run(evaluate, capsys, "--real", real, "--fake", fake)
    assert code == 0, err
    assert t["resolution"] == "32x32 RGB"
    assert "64 images, 64 resized from 64x64 to 32x32" in out
    assert float(t["swd/mean"]) == 0.0 and float(t["swd/real_vs_real"]) > 0
    assert float(t["ms_ssim"]) == pytest.approx(float(t["ms_ssim/real"]))
    # No features given: FID/KID/PR are left out, and a line says what to pass.
    assert "fid" not in t and "--inception_weights PATH" in out and "--features=digits" in out


def test_inception_weights_make_inception_the_features(evaluate, digits, tmp_path, capsys,
                                                       monkeypatch):  # fmt: skip
    """With --inception_weights the features are the FID Inception's, fed the images in [-1, 1]
    (x / 127.5 - 1, as pytorch-fid) at the real resolution; a stand-in network keeps this fast
    (tests/test_metrics_inception.py checks the network itself)."""
    from jaxgan import evaluation

    seen = []

    def stand_in(weights):
        assert weights == str(tmp_path / "w.npz")
        return lambda x: seen.append(x) or x.reshape(len(x), 4, 7, 4, 7).mean((2, 4)).reshape(len(x), -1)  # fmt: skip

    monkeypatch.setattr(evaluation, "_inception", stand_in)
    (tmp_path / "w.npz").write_bytes(b"")
    first, second = digits
    real, fake = _write(tmp_path / "real", first[:40]), _write(tmp_path / "fake", second[:40])
    args = ["--real", real, "--fake", fake, "--inception_weights", str(tmp_path / "w.npz")]
    code, t, _, err = _run(evaluate, capsys, *args, "--metrics=fid")
    assert code == 0, err
    assert t["features"] == "inception_v3"
    assert [x.shape for x in seen] == [(40, 28, 28, 1)] * 2
    np.testing.assert_allclose(seen[1][..., 0], first[:40] / 127.5 - 1, atol=1e-6)
    x = [f[:40].reshape(40, 4, 7, 4, 7).mean((2, 4)).reshape(40, -1) for f in (second, first)]
    assert float(t["fid"]) == pytest.approx(
        _fid_scipy(x[0] / 127.5 - 1, x[1] / 127.5 - 1), rel=1e-3
    )


def test_unreadable_files_are_one_warning_and_counted(evaluate, digits, tmp_path, capsys):
    first, _ = digits
    real = _write(tmp_path / "real", first[:40])
    fake = _write(tmp_path / "fake", first[40:80])
    (tmp_path / "fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "fake" / "notes.jpg").write_text("not an image")
    code, t, out, err = _run(evaluate, capsys, "--real", real, "--fake", fake, "--metrics=swd")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("evaluate.py: warning: folder:")
    assert "skipped 2 of 42 image files" in warnings[0]
    assert t["skipped/fake"] == "2" and t["skipped/real"] == "0"
    assert t["num_images/fake"] == "40"
    assert "2 of 42 image files skipped" in out


def test_a_run_against_a_folder_is_its_samples_as_pngs(evaluate, digits, tmp_path, capsys,
                                                       monkeypatch):  # fmt: skip
    """``--workdir RUN --real folder:A`` evaluates the run's samples as saved to PNG: the same
    table as ``--fake`` with a folder of those PNGs. The run (a digit dataset's: the digit
    features by default) is a stand-in whose generator picks a real digit by its latent."""
    import jaxgan
    from jaxgan.evaluation import run_image_set

    first, second = digits
    pool = np.pad(second, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32) / 127.5 - 1

    def sample(z):
        return pool[np.abs(np.asarray(z)[:, 0] * 1e4).astype(int) % len(pool)]

    config = types.SimpleNamespace(
        data=types.SimpleNamespace(dataset="mnist5k"), model=types.SimpleNamespace(latent_dim=4)
    )
    run = types.SimpleNamespace(config=config, step=7, sample=lambda z: sample(z))
    monkeypatch.setattr(jaxgan, "open_run", lambda workdir, step=None: run)
    real = _write(tmp_path / "real", first[:64])
    code, by_run, _, err = _run(evaluate, capsys, "--workdir", str(tmp_path), "--real", real,
                                "--metrics=swd,fid,kid")  # fmt: skip
    assert code == 0, err
    assert by_run["features"] == "digit_classifier" and by_run["num_images/fake"] == "64"
    samples = run_image_set(sample, 4, 64, seed=0).images[..., 0]
    fake = _write(tmp_path / "samples", samples)
    args = ["--real", real, "--fake", fake, "--metrics=swd,fid,kid", "--features=digits"]
    code, by_folder, _, err = _run(evaluate, capsys, *args)
    assert code == 0, err
    assert by_run == by_folder
    config.data.dataset = "ring8"  # a toy's 2-D points: refused in one line
    code, _, _, err = _run(evaluate, capsys, "--workdir", str(tmp_path), "--real", real)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("evaluate.py: error: --real compares images;") and "2-D points" in err


@pytest.mark.parametrize(
    "args, says",
    [
        (["--workdir", "{tmp}", "--real", "{a}", "--fake", "{a}"], "--fake and --workdir"),
        ([], "pass --workdir RUN"),
        (["--real", "{a}"], "needs --fake folder:B"),
        (["--fake", "{a}"], "needs --real folder:A"),
        (["--real", "{a}", "--fake", "folder:{tmp}/empty"], "no images found"),
        (["--real", "{a}", "--fake", "folder:{tmp}/none"], "is not a directory"),
        (["--real", "{a}", "--fake", "{tmp}/a"], "must be folder:PATH"),
        (["--real", "{a}", "--fake", "{a}", "--metrics=swd,nope"], "unknown metric 'nope'"),
        (["--real", "{a}", "--fake", "{a}", "--metrics=fid"], "--inception_weights PATH"),
        (["--real", "{a}", "--fake", "{a}", "--metrics=modes"], "--features=digits"),
        (["--real", "{a}", "--fake", "{a}", "--features=pixels"], "--features must be one of"),
        (["--real", "{a}", "--fake", "{a}", "--features=inception"], "needs --inception_weights"),
        (["--real", "{big}", "--fake", "{a}", "--features=digits"], "28x28 or 32x32"),
        (["--real", "{a}", "--fake", "{a}", "--num_images=10"], "compared whole"),
        (["--real", "{a}", "--fake", "{a}", "--inception_weights={tmp}/x.npz"], "is not a file"),
        (["--real", "{a}", "--fake", "{a}", "--seed=x"], "invalid int value"),
        (["--workdir", "{tmp}", "--features=digits"], "--features applies with --real"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(evaluate, tmp_path, capsys, args, says):
    rng = np.random.default_rng(3)
    a = _write(tmp_path / "a", rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
    big = _write(tmp_path / "big", rng.integers(0, 256, (4, 64, 64), dtype=np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    args = [x.format(tmp=tmp_path, a=a, big=big) for x in args]
    code, _, out, err = _run(evaluate, capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error: "), err
    assert says in lines[0], lines[0]
    assert "swd" not in out  # nothing computed
