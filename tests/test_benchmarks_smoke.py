"""Smoke test of benchmarks/run.py: the toy case and its input pipeline end to end, the printed
table and the JSON fields; and every case is its preset plus flag overrides.

No timing is asserted: the numbers depend on the machine and its load.
"""

import importlib
import json
import os
import statistics
import sys

import numpy as np
import pytest

from jaxgan import configs
from jaxgan.training.config import override

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _bench(name: str):
    """Import ``benchmarks/<name>.py`` (the scripts import their siblings)."""
    sys.path.insert(0, BENCH)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(BENCH)


def test_run_toy_end_to_end(tmp_path, capsys):
    run = _bench("run")
    out = tmp_path / "run.json"
    # --isolate yes: the step case runs in a child process, as on a GPU.
    argv = ["--cases", "toy,input", "--reps", "2", "--warmup", "0", "--target-rep-s", "0.01",
            "--peak-n", "256", "--input-batches", "2", "--isolate", "yes", "--out", str(out)]  # fmt: skip
    assert run.main(argv) == 0
    res = json.loads(out.read_text())
    for key in ("machine", "load_before", "load_after", "matmul_peak", "settings", "cases",
                "flop_check", "input", "target", "table"):  # fmt: skip
        assert key in res, key
    assert res["machine"]["versions"]["jax"] and res["machine"]["backend"] == "cpu"
    assert res["settings"]["isolated"] and res["settings"]["cases"] == ["toy", "input"]
    peak = res["matmul_peak"]
    best = max(peak["start"]["flops_per_s"], peak["end"]["flops_per_s"])
    assert peak["reference_flops_per_s"] == best > 0 and peak["start"]["n"] == 256

    (case,) = res["cases"]
    cfg = case["config"]
    assert case["name"] == "toy" and cfg["preset"] == "toy-wgan-gp" and cfg["overrides"] == {}
    # Built from the preset exactly: the resolved config is the preset's.
    assert cfg["resolved"] == json.loads(configs.get("toy-wgan-gp").dumps())
    assert (cfg["batch"], cfg["n_critic"], cfg["critic_loop"]) == (256, 5, "unrolled")
    t = case["timing"]
    for key in ("median_s", "min_s", "max_s", "q1_s", "q3_s", "iters_per_rep", "recompiles"):
        assert key in t, key
    assert t["reps"] == 2 and t["recompiles"] == 0 and 0 < t["min_s"] <= t["median_s"] <= t["max_s"]
    assert case["compile"]["compile_s"] > 0 and case["compile"]["compiles_in_first_call"] == 0
    assert case["memory"]["peak_bytes"] > 0 and case["xla_memory"]["argument_size_in_bytes"] > 0
    assert np.isfinite(case["last_metrics"]["w_estimate"])
    # XLA's count includes all 5 critic updates: within a few % of the hand count of the matmuls
    # (a step whose loop body were counted once would give about 0.27).
    fc = res["flop_check"]
    assert fc["xla"] == case["flops"]["per_iter"] and 0.95 < fc["ratio"] < 1.1
    assert case["flops_per_s"] == pytest.approx(fc["xla"] / t["median_s"])
    assert case["fraction_of_peak"] == pytest.approx(
        case["flops_per_s"] / peak["reference_flops_per_s"]
    )
    # Each repetition is paired with a peak sample taken right before it.
    assert len(t["pair_samples"]) == len(t["rep_times_s"]) == 2
    ratios = [fc["xla"] / s / p for s, p in zip(t["rep_times_s"], t["pair_samples"], strict=True)]
    assert case["paired"]["median"] == pytest.approx(statistics.median(ratios))
    assert res["target"]["cases"]["toy"]["paired"] == case["paired"]["median"]

    (inp,) = res["input"]
    assert inp["dataset"] == "ring8" and (inp["batch"], inp["stack"]) == (256, 5)
    assert inp["headroom"]["toy"] == pytest.approx(inp["images_per_s"] / case["images_per_s"])

    printed = capsys.readouterr().out
    assert res["table"] in printed and "% paired" in res["table"]
    row = next(ln for ln in res["table"].splitlines() if ln.startswith("toy "))
    assert f"{1e3 * t['median_s']:.1f}" in row and f"{fc['xla'] / 1e9:.2f}" in row


def test_cases_are_presets_with_overrides():
    cases = _bench("cases")
    mnist = {"model": "mlp", "latent_dim": 100, "hidden": (512, 256)}
    want = {
        "toy": configs.get("toy-wgan-gp"),
        "mnist_mlp_gp": override(configs.get("dcgan-mnist5k"), lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), **mnist),
        "mnist_mlp_clip": override(configs.get("dcgan-mnist5k"), loss="wgan", **mnist),
        "dcgan64": override(configs.get("dcgan-mnist5k"), latent_dim=128, width=64, critic_norm="layer"),
        "pggan8_bf16": override(configs.get("pggan"), stage_schedule=(4, 8, 16), dtype="bfloat16"),
    }  # fmt: skip
    for name, config in want.items():
        assert cases.get_case(name, pggan_final=16).config == config, name
    clip = cases.get_case("mnist_mlp_clip").config
    assert (clip.loss.clip, clip.optim.optimizer, clip.optim.lr_d) == (0.01, "rmsprop", 5e-5)
    pg = cases.get_case("pggan8_bf16", pggan_final=16)
    assert (pg.batch, pg.config.loss.n_critic, pg.shape, pg.resolution) == (16, 1, (16, 16, 3), 8)
    assert cases.get_case("toy_nogp").config.loss.gp_weight == 0.0
    with pytest.raises(ValueError, match="unknown case"):
        cases.get_case("pggan8_f16")
    with pytest.raises(SystemExit, match="unknown case 'nope'"):
        _bench("run").main(["--cases", "toy,nope"])


def test_gp_overhead_pairs_each_step_with_its_nogp_twin():
    run = _bench("run")

    def result(name, seconds, flops):
        return {"name": name, "group": "gp", "timing": {"median_s": seconds, "min_s": seconds},
                "flops": {"per_iter": flops, "method": "-"}, "flops_per_s": flops / seconds}  # fmt: skip

    res = {"matmul_peak": {"reference_flops_per_s": 10.0},
           "cases": [result("toy_nogp", 1.0, 4.0), result("dcgan64", 3.0, 9.0), result("toy", 2.0, 6.0)]}  # fmt: skip
    run.derive(res, ["gp_overhead"])
    (g,) = res["gp_overhead"]  # dcgan64 has no twin here
    assert (g["name"], g["time_ratio"], g["flops_ratio"]) == ("toy", 2.0, 1.5)
    assert res["cases"][2]["fraction_of_peak"] == 0.3 and "target" not in res
