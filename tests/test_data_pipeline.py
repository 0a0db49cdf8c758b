"""Pipeline behaviour: determinism, exact resume (also across configure), sharding, errors."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxgan import data

KW = dict(batch_size=16, seed=11, mirror=True, labels=True, stack=2)


def _np(batch):
    return {k: np.asarray(v) for k, v in batch.items()}


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _run_with_configure(p, n_before, n_after):
    out = [_np(next(p)) for _ in range(n_before)]
    p.configure(resolution=16, batch_size=32)
    out += [_np(next(p)) for _ in range(n_after)]
    return out


def test_deterministic_and_seed_dependent():
    a = data.load("mnist5k", **KW)
    b = data.load("mnist5k", **KW)
    c = data.load("mnist5k", **{**KW, "seed": 12})
    for _ in range(3):
        ba, bb, bc = _np(next(a)), _np(next(b)), _np(next(c))
        _equal(ba, bb)
        assert not np.array_equal(ba["x"], bc["x"])
    for p in (a, b, c):
        p.close()


def test_prefetch_does_not_change_batches():
    a = data.load("stacked_mnist", **KW, prefetch=0)
    b = data.load("stacked_mnist", **KW, prefetch=4)
    for _ in range(4):
        _equal(_np(next(a)), _np(next(b)))
    a.close()
    b.close()


def test_exact_resume_across_configure():
    ref = data.load("mnist5k", **KW)
    want = _run_with_configure(ref, 3, 4)
    assert want[2]["x"].shape == (2, 16, 32, 32, 1) and want[3]["x"].shape == (2, 32, 16, 16, 1)
    ref.close()

    # Saved before the configure change.
    p = data.load("mnist5k", **KW)
    for _ in range(2):
        next(p)
    state = json.loads(json.dumps(p.get_state()))
    p.close()
    q = data.load("mnist5k", **KW)
    q.set_state(state)
    got = [_np(next(q))]
    q.configure(resolution=16, batch_size=32)
    got += [_np(next(q)) for _ in range(4)]
    for g, w in zip(got, want[2:], strict=True):
        _equal(g, w)
    q.close()

    # Saved after it: the fresh pipeline (built at the old settings) picks them up from the state.
    p = data.load("mnist5k", **KW)
    _run_with_configure(p, 3, 2)
    state = json.loads(json.dumps(p.get_state()))
    assert state["resolution"] == 16 and state["batch_size"] == 32
    p.close()
    q = data.load("mnist5k", **KW)
    q.set_state(state)
    assert (q.resolution, q.batch_size) == (16, 32)
    for w in want[5:]:
        _equal(_np(next(q)), w)
    q.close()


def test_state_mismatch_is_rejected():
    p = data.load("mnist5k", batch_size=8, seed=1)
    next(p)
    state = p.get_state()
    p.close()
    q = data.load("mnist5k", batch_size=8, seed=2)
    with pytest.raises(ValueError, match="seed"):
        q.set_state(state)
    q.close()


def test_mirror_flips_about_half_the_images():
    a = data.load("mnist5k", batch_size=256, seed=4)
    b = data.load("mnist5k", batch_size=256, seed=4, mirror=True)
    xa, xb = np.asarray(next(a)["x"]), np.asarray(next(b)["x"])
    same = np.array([np.array_equal(u, v) for u, v in zip(xa, xb, strict=True)])
    flipped = np.array([np.array_equal(u[:, ::-1], v) for u, v in zip(xa, xb, strict=True)])
    assert (same | flipped).all()
    assert 0.35 < flipped.mean() < 0.65 and 0.35 < same.mean() < 0.65
    a.close()
    b.close()


def test_sharded_over_eight_devices():
    assert jax.device_count() == 8
    p = data.load("mnist5k", batch_size=32, labels=True)
    b = next(p)
    x = b["x"]
    assert isinstance(x, jax.Array) and x.shape == (32, 32, 32, 1) and x.dtype == np.float32
    assert isinstance(x.sharding, NamedSharding)
    assert x.sharding.spec == PartitionSpec("data", None, None, None)
    assert len(x.sharding.device_set) == 8
    assert {s.data.shape for s in x.addressable_shards} == {(4, 32, 32, 1)}
    assert b["label"].dtype == np.int32 and len(b["label"].sharding.device_set) == 8
    p.close()

    p = data.load("mnist5k", batch_size=32, stack=5, resolution=8)
    x = next(p)["x"]
    assert x.shape == (5, 32, 8, 8, 1)
    assert x.sharding.spec == PartitionSpec(None, "data", None, None, None)
    assert {s.data.shape for s in x.addressable_shards} == {(5, 4, 8, 8, 1)}
    # The k stacked batches are different real batches.
    xs = np.asarray(x)
    assert not np.array_equal(xs[0], xs[1])
    p.close()


def test_batch_not_divisible():
    with pytest.raises(ValueError, match="divisible"):
        data.load("mnist5k", batch_size=12)
    with pytest.raises(ValueError, match="divisible"):
        data.load("ring8", batch_size=4)
    p = data.load("mnist5k", batch_size=16)
    with pytest.raises(ValueError, match="divisible"):
        p.configure(batch_size=20)
    p.close()


@pytest.mark.parametrize("spec", ["mnist", "tfds", "folder", "ring9", ""])
def test_unknown_spec(spec):
    with pytest.raises(ValueError, match="dataset") as e:
        data.load(spec, batch_size=8)
    if spec != "folder":
        assert "tfds:NAME[/CONFIG][:SPLIT]" in str(e.value) and "ring8" in str(e.value)


def test_labels_needed_where_there_are_none():
    with pytest.raises(ValueError, match="labels"):
        data.load("folder:/nonexistent", batch_size=8, labels=True)
