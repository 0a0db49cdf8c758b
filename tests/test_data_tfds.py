"""tfds:NAME — mock_data without TensorFlow or network, unprepared errors, a real ArrayRecord set."""

import collections
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgan import data, parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "spec, shape, native",
    [("tfds:mnist", (16, 32, 32, 1), 32), ("tfds:cifar10:test", (16, 32, 32, 3), 32)],
)
def test_mock_data_batches(spec, shape, native, tmp_path):
    with tfds.testing.mock_data(num_examples=48):
        p = data.load(spec, batch_size=16, labels=True, data_dir=str(tmp_path), seed=1)
        q = data.load(spec, batch_size=16, labels=True, data_dir=str(tmp_path), seed=1)
        assert p.native_resolution == native and p.num_examples == 48
        b = next(p)
        x = np.asarray(b["x"])
        assert x.shape == shape and x.dtype == np.float32
        assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.3  # random pixels, full range
        assert b["label"].shape == (16,) and b["label"].dtype == np.int32
        assert len(b["x"].sharding.device_set) == 8
        np.testing.assert_array_equal(np.asarray(next(q)["x"]), x)  # deterministic
        if spec == "tfds:mnist":  # 28x28 padded to 32x32 with -1
            assert (x[:, :2] == -1).all() and (x[:, :, -2:] == -1).all()
        p.configure(resolution=8)
        assert next(p)["x"].shape == (16, 8, 8, shape[-1])
        p.close()
        q.close()
    assert "tensorflow" not in sys.modules
    assert os.listdir(tmp_path) == []  # nothing downloaded or prepared


def test_mock_data_without_tensorflow_or_network():
    """In a fresh interpreter: tensorflow is never imported and no socket connects."""
    code = textwrap.dedent(
        """
        import importlib.abc, json, os, socket, sys
        os.environ["JAX_PLATFORMS"] = "cpu"
        probes = []
        class NoTF(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorflow":
                    probes.append(name)
                return None
        sys.meta_path.insert(0, NoTF())
        def no_network(*args, **kwargs):
            raise OSError("network access in a test")
        socket.socket.connect = no_network
        socket.create_connection = no_network
        import tensorflow_datasets as tfds
        from jaxgan import data
        out = {}
        with tfds.testing.mock_data(num_examples=8):
            for spec in ("tfds:mnist", "tfds:cifar10"):
                p = data.load(spec, batch_size=8, data_dir="/nonexistent/tfds", prefetch=0)
                x = next(p)["x"]
                out[spec] = [list(x.shape), float(x.min()), float(x.max())]
                p.close()
        out["tf_loaded"] = "tensorflow" in sys.modules
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["tf_loaded"] is False
    assert out["tfds:mnist"][0] == [8, 32, 32, 1] and out["tfds:cifar10"][0] == [8, 32, 32, 3]
    for spec in ("tfds:mnist", "tfds:cifar10"):
        assert -1 <= out[spec][1] < out[spec][2] <= 1


def test_unprepared_dataset_fails_fast(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError) as e:  # at once: nothing is downloaded
        data.load("tfds:fashion_mnist", batch_size=8, data_dir=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path) in msg
    assert "--dataset=tfds:fashion_mnist" in msg and "--download" in msg
    assert "download_and_prepare(file_format='array_record')" in msg
    assert isinstance(e.value, ValueError)
    assert os.listdir(tmp_path) == []


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXGAN_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == str(tmp_path)
    with pytest.raises(data.DatasetNotPreparedError, match=str(tmp_path)):
        data.load("tfds:mnist", batch_size=8)
    monkeypatch.delenv("JAXGAN_DATA_DIR")
    assert data.default_data_dir() == os.path.expanduser("~/tensorflow_datasets")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorflow") is not None,
    reason="TensorFlow is installed: preparing would really download",
)
def test_download_without_tensorflow(tmp_path, capsys):
    with pytest.raises(data.DatasetNotPreparedError, match=r'pip install "jaxgan\[prepare\]"'):
        data.load("tfds:mnist", batch_size=8, data_dir=str(tmp_path), download=True)
    assert "preparing tfds:mnist" in capsys.readouterr().out


def test_unknown_tfds_name(tmp_path):
    with pytest.raises(ValueError, match="no_such_dataset"):
        data.load("tfds:no_such_dataset", batch_size=8, data_dir=str(tmp_path))


_BUILDER = """
import io
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


class JaxganTinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(num_classes=3),
            })
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        rng = np.random.default_rng(0)
        for i in range(12):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (40 + 2 * i, 50, 3), np.uint8)).save(buf, "PNG")
            yield i, {"image": buf.getvalue(), "label": i % 3}
"""


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    """A real ArrayRecord dataset, prepared without TensorFlow (PNG bytes need no encoding)."""
    root = tmp_path_factory.mktemp("tiny_tfds")
    pkg = root / "jaxgan_tiny_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(_BUILDER)
    prep = (
        "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; "
        "from jaxgan_tiny_pkg import JaxganTinyImages as B; "
        "B(data_dir=sys.argv[2]).download_and_prepare(file_format='array_record')"
    )
    data_dir = root / "data"
    res = subprocess.run(
        [sys.executable, "-c", prep, str(root), str(data_dir)], capture_output=True, text=True
    )
    assert res.returncode == 0, f"could not prepare a tiny tfds dataset: {res.stderr[-500:]}"
    return str(data_dir)


def test_prepared_array_record_dataset(tiny_tfds):
    """Read through the real on-disk path (builder from files): crop + resize, labels, epochs."""
    from PIL import Image

    ds = tfds.data_source("jaxgan_tiny_images", split="train", data_dir=tiny_tfds)
    want = collections.Counter()
    for i in range(len(ds)):
        ex = ds[i]
        img = ex["image"]
        h, w, _ = img.shape
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        ref = Image.fromarray(img[top : top + s, left : left + s]).resize(
            (32, 32), Image.Resampling.LANCZOS
        )
        want[(np.asarray(ref).tobytes(), int(ex["label"]))] += 1
    mesh = parallel.make_mesh(jax.devices()[:1])
    p = data.load(
        "tfds:jaxgan_tiny_images:train", batch_size=4, labels=True, data_dir=tiny_tfds, mesh=mesh
    )
    assert (p.num_examples, p.native_resolution, p.channels) == (12, 32, 3)
    got = collections.Counter()
    for _ in range(3):
        b = next(p)
        x = np.asarray(b["x"])
        assert x.shape == (4, 32, 32, 3) and -1 <= x.min() and x.max() <= 1
        u = np.rint((x.astype(np.float64) + 1) * 127.5).astype(np.uint8)
        for img, lab in zip(u, np.asarray(b["label"]), strict=True):
            got[(img.tobytes(), int(lab))] += 1
    assert got == want  # one epoch = each record once, at the right size, with its label
    p.close()
