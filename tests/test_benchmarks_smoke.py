"""Smoke test of benchmarks/run.py: one case, one repetition, the JSON has its fields.

No timing is asserted: the numbers depend on the machine and its load.
"""

import importlib
import json
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _bench(name: str):
    """Import ``benchmarks/<name>.py``; the scripts import their siblings, so BENCH is on the
    path while it loads."""
    sys.path.insert(0, BENCH)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(BENCH)


def test_run_toy_writes_json(tmp_path):
    run = _bench("run")
    out = tmp_path / "run.json"
    argv = ["--cases", "toy", "--reps", "1", "--warmup", "0", "--target-rep-s", "0.01",
            "--exact-flops", "none", "--peak-n", "256", "--out", str(out)]  # fmt: skip
    assert run.main(argv) == 0
    res = json.loads(out.read_text())
    for key in ("machine", "load_before", "load_after", "matmul_peak", "cases", "flop_check"):
        assert key in res, key
    assert res["machine"]["versions"]["jax"]
    assert res["matmul_peak"]["reference_flops_per_s"] > 0
    (case,) = res["cases"]
    assert case["name"] == "toy" and case["config"]["batch"] == 256
    for key in ("median_s", "min_s", "max_s", "reps", "iters_per_rep", "recompiles"):
        assert key in case["timing"], key
    assert case["timing"]["reps"] == 1
    assert case["compile"]["compile_s"] > 0
    assert case["memory"]["peak_bytes"] > 0
    # The count must include all 5 critic updates, within a few % of the hand count of the
    # matmuls; the lax.scan form of the step, whose loop body XLA counts once, is far below.
    fc = res["flop_check"]
    assert 0.95 < fc["ratio"] < 1.1
    assert fc["ratio_scan"] < 0.5
    assert case["flops_per_s"] > 0 and case["fraction_of_peak"] > 0
    # Each repetition is paired with a peak sample taken right before it.
    assert len(case["timing"]["pair_samples"]) == len(case["timing"]["rep_times_s"]) == 1
    want = fc["xla"] / case["timing"]["rep_times_s"][0] / case["timing"]["pair_samples"][0]
    assert abs(case["paired"]["median"] - want) < 1e-9 * want
    assert res["target"]["cases"]["toy"]["paired"] == case["paired"]["median"]


def test_ab_step_interleaves_variants(tmp_path):
    ab_step = _bench("ab_step")
    assert ab_step.parse_variant("default") == {}
    assert ab_step.parse_variant("batch_fakes=false,skip_with=select") == {
        "batch_fakes": False,
        "skip_with": "select",
    }
    with pytest.raises(ValueError, match="bad item 'fast=yes'"):
        ab_step.parse_variant("fast=yes")
    assert ab_step.parse_variant("clip_step=nextafter") == {"clip_step": "nextafter"}
    with pytest.raises(ValueError, match="clip_step must be one of bits, nextafter"):
        ab_step.parse_variant("clip_step=fast")
    out = tmp_path / "ab.json"
    argv = ["--case", "toy", "--variants", "default;skip_with=select", "--rounds", "2",
            "--steps", "1", "--out", str(out)]  # fmt: skip
    assert ab_step.main(argv) == 0
    res = json.loads(out.read_text())
    assert [r["variant"] for r in res["results"]] == ["default", "skip_with=select"]
    for r in res["results"]:
        assert len(r["samples_s"]) == 2 and r["flops_per_iter"] > 1e10


def test_ab_step_clip_step_variant_compiles_the_replaced_projection():
    """clip_step=nextafter really compiles jnp.nextafter into the projection, and only then;
    both forms give the same bits (so the A/B times equal work)."""
    import jax
    import jax.numpy as jnp

    from jaxgan.optim import clip_weights

    ab_step = _bench("ab_step")
    rng = np.random.default_rng(1)
    p = jnp.asarray(
        (rng.choice([-1, 1], 4000) * 10.0 ** rng.uniform(-3, 1, 4000)).astype(np.float32)
    )
    u = jnp.asarray((rng.normal(size=4000) * 1e-3).astype(np.float32))
    tx = clip_weights(0.01)

    def make_update():  # a new function each time: JAX caches traces per function
        return lambda u, p: tx.update({"w": u}, tx.init({"w": p}), {"w": p})[0]["w"]

    out = {}
    for form in ab_step.CLIP_STEPS:
        compiled = ab_step.compile_with_clip_step(jax.jit(make_update()), (u, p), form)
        assert ("nextafter" in compiled.as_text()) == (form == "nextafter")
        out[form] = np.asarray(compiled(u, p)).view(np.uint32)
    np.testing.assert_array_equal(out["bits"], out["nextafter"])
    with pytest.raises(ValueError, match="clip_step must be one of bits, nextafter"):
        ab_step.compile_with_clip_step(jax.jit(make_update()), (u, p), "fast")


def test_gemm_shapes_forms_compute_the_same_product():
    """The "tn" form (a stored transposed, contracted on dim 0) is a @ b, like "nn"."""
    gemm_shapes = _bench("gemm_shapes")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 5)).astype(np.float32)
    b = rng.normal(size=(5, 4)).astype(np.float32)
    want = a.astype(np.float64) @ b
    np.testing.assert_allclose(np.asarray(gemm_shapes.product("nn")(a, b)), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gemm_shapes.product("tn")(a.T, b)), want, rtol=1e-5)
    with pytest.raises(ValueError, match="form must be one of nn, tn"):
        gemm_shapes.product("nt")
    assert {s[3] for s in gemm_shapes.SHAPES} == {"nn", "tn"}
