"""FID InceptionV3: weight layout, loader errors, torch->flax mapping, one small forward pass."""

from __future__ import annotations

import numpy as np
import pytest

from jaxgan.metrics import inception


@pytest.fixture(scope="module")
def layout() -> dict[str, tuple[int, ...]]:
    return inception.inception_weight_shapes()


def _random_weights(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in the pytorch-fid layout (He-scaled convs, unit BatchNorm)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in layout.items():
        if key.endswith("conv.weight"):
            out[key] = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape).astype(np.float32)
        elif key.endswith(("running_var", "bn.weight")):
            out[key] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        else:
            out[key] = rng.normal(0, 0.05, shape).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def weights_file(layout: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    arrays = _random_weights(layout)
    path = tmp_path_factory.mktemp("inception") / "inception_fid.npz"
    extra = {"fc.weight": np.zeros((1008, 2048), np.float32), "fc.bias": np.zeros(1008, np.float32)}
    np.savez(path, **arrays, **extra)  # fc.* (the logits layer) is ignored by the loader
    return str(path), arrays


def test_layout_matches_the_fid_inception(layout: dict) -> None:
    convs = [k for k in layout if k.endswith("conv.weight")]
    assert len(convs) == 94 and len(layout) == 94 * 5
    trainable = sum(
        int(np.prod(s))
        for k, s in layout.items()
        if not k.endswith(("running_mean", "running_var"))
    )
    assert trainable == 21_785_568  # torchvision InceptionV3 without AuxLogits and fc
    assert layout["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert layout["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
    assert layout["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert layout["Mixed_7c.branch3x3dbl_3b.bn.running_var"] == (384,)


def test_loader_maps_weights_and_forward(weights_file: tuple) -> None:
    import jax.numpy as jnp

    path, arrays = weights_file
    extractor = inception.InceptionFeatureExtractor(path, batch_size=2)
    model = extractor.model
    w = arrays["Mixed_6b.branch7x7_2.conv.weight"]
    np.testing.assert_array_equal(
        np.asarray(model.Mixed_6b.branch7x7_2.conv.kernel[...]), w.transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(
        np.asarray(model.Mixed_7c.branch_pool.bn.var[...]),
        arrays["Mixed_7c.branch_pool.bn.running_var"],
    )
    # First layer against a direct (torch-convention) evaluation: stride 2, no padding, BN, ReLU.
    x = np.random.default_rng(1).uniform(-1, 1, (1, 9, 9, 3)).astype(np.float32)
    wt = arrays["Conv2d_1a_3x3.conv.weight"]
    patches = np.stack(
        [[x[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] for j in range(4)] for i in range(4)]
    )  # (4, 4, kh, kw, c)
    conv = np.einsum("ijhwc,ochw->ijo", patches, wt)
    bn = {
        k: arrays[f"Conv2d_1a_3x3.bn.{k}"]
        for k in ("weight", "bias", "running_mean", "running_var")
    }
    ref = (conv - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn[
        "bias"
    ]
    got = np.asarray(model.Conv2d_1a_3x3(jnp.asarray(x)))[0]
    np.testing.assert_allclose(got, np.maximum(ref, 0), atol=1e-4)
    # One forward pass at the standard 299x299 (inputs are resized), gray tiled to RGB.
    images = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    feats = extractor.features(images)
    assert feats.shape == (2, 2048) and np.all(np.isfinite(feats)) and np.all(feats >= 0)
    assert not np.allclose(feats[0], feats[1])


def test_loader_errors(weights_file: tuple, layout: dict, tmp_path) -> None:
    _, arrays = weights_file
    with pytest.raises(FileNotFoundError):
        inception.load_inception(tmp_path / "nope.npz")
    partial = dict(list(arrays.items())[:10])
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(ValueError, match=r"460 missing key\(s\)"):
        inception.load_inception(tmp_path / "partial.npz")
    np.savez(tmp_path / "extra.npz", **arrays, **{"Mixed_8a.conv.weight": np.zeros(1)})
    with pytest.raises(ValueError, match=r"1 unexpected key\(s\) \['Mixed_8a.conv.weight'\]"):
        inception.load_inception(tmp_path / "extra.npz")
    bad = dict(arrays)
    bad["Mixed_5b.branch1x1.conv.weight"] = np.zeros((64, 192, 3, 3), np.float32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="Mixed_5b.branch1x1.conv.weight has shape"):
        inception.load_inception(tmp_path / "bad.npz")
