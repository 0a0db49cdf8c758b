"""Smoke test of ``benchmarks/run.py --peers`` (benchmarks/peers/runner.py): a tiny toy case
against its PyTorch reference and one external reference, the JSON fields and the printed table;
and without torch, the one-line error. No timing is asserted: the numbers depend on the machine and
its load.
"""

import functools
import importlib
import json
import sys

import pytest


def _run():
    """``benchmarks/run.py`` as a module (``benchmarks/`` is on sys.path: conftest.py)."""
    return importlib.import_module("run")


def test_peers_tiny(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    # The external case's networks in the forms for_cpu chose on the build machine: timing them
    # (what a real --peers run does) takes minutes; tests/test_cpu_forms.py covers the timing.
    ext = importlib.import_module("peers.external")
    forms = ext.FORMS_HERE["wgan_gp_mnist"]
    monkeypatch.setattr(ext, "wgan_gp_mnist_models", functools.partial(ext.wgan_gp_mnist_models, forms=forms))  # fmt: skip
    out = tmp_path / "peers.json"
    # 1 torch thread: on a busy 2-core host 2 OpenMP threads made a batch-8 toy step 60x slower.
    argv = ["--peers", "--peer-cases", "toy,wgan_gp_mnist", "--peer-batch", "8", "--peer-rounds",
            "3", "--peer-threads", "1", "--warmup", "1", "--target-rep-s", "0.01", "--peak-n", "256", "--out", str(out)]  # fmt: skip
    assert _run().main(argv) == 0
    res = json.loads(out.read_text())
    for key in ("machine", "threads", "settings", "load_before", "load_after", "peers", "table"):
        assert key in res, key
    assert res["threads"]["pytorch"] == 1 and res["threads"]["jax_cpu"] >= 1
    assert res["machine"]["versions"]["torch"] and res["settings"]["rounds"] == 3
    toy, ext = res["peers"]
    assert "error" not in toy and "error" not in ext, (toy, ext)
    assert toy["case"] == "toy" and toy["batch"] == 8 and toy["rounds"] == 3
    assert toy["jaxgan_ms"] > 0 and toy["pytorch_ms"] > 0
    assert toy["ratio"] == pytest.approx(toy["pytorch_ms"] / toy["jaxgan_ms"])
    # The same data shapes on both sides: (n_critic, B, 2).
    assert toy["jaxgan"]["reals_shape"] == toy["pytorch"]["reals_shape"] == [5, 8, 2]
    assert (
        "--config=toy-wgan-gp" in toy["jaxgan"]["flags"]
        and "--batch_size=8" in toy["jaxgan"]["flags"]
    )
    assert all(len(v) == 3 and min(v) > 0 for v in toy["round_ms"].values())
    s = toy["spread"]
    assert s["ratio_min"] <= s["ratio_q1"] <= s["ratio_median"] <= s["ratio_q3"] <= s["ratio_max"]
    assert s["jaxgan_ms_min"] <= toy["jaxgan_ms"] <= s["jaxgan_ms_max"]
    # FLOPs: XLA's count of the toy step against the matmul FLOPs counted by hand (the rest,
    # elementwise work and the optimizer, adds a few percent); each side's rate and peak share.
    runner, cases = importlib.import_module("peers.runner"), importlib.import_module("cases")
    hand = cases.toy_hand_flops(runner.with_batch(cases.get_case("toy"), 8).config)["per_iter"]
    assert hand <= toy["flops_per_iter"] <= 1.5 * hand, (toy["flops_per_iter"], hand)
    peak = res["matmul_peak"]["reference_flops_per_s"]
    assert peak >= max(res["matmul_peak"][k]["flops_per_s"] for k in ("start", "end"))
    for side in ("jaxgan", "pytorch"):
        rate = toy["flops_per_iter"] / (toy[f"{side}_ms"] / 1e3)
        assert toy[f"{side}_gflops"] == pytest.approx(rate / 1e9)
        assert toy[f"{side}_peak_fraction"] == pytest.approx(rate / peak)
    # An external reference: jaxgan's step on NNX mirrors of the script's networks.
    assert ext["case"] == "wgan_gp_mnist" and ext["batch"] == 8 and ext["pytorch_ms"] > 0
    assert ext["jaxgan_ms"] > 0
    assert ext["ratio"] == pytest.approx(ext["pytorch_ms"] / ext["jaxgan_ms"])
    assert ext["jaxgan"]["reals_shape"] == ext["pytorch"]["reals_shape"] == [5, 8, 784]
    printed = capsys.readouterr().out
    assert res["table"] in printed
    assert torch.get_num_threads() == threads  # restored
    row = next(ln for ln in res["table"].splitlines() if ln.startswith("toy "))
    assert f"{toy['ratio']:.2f}" in row and f"{toy['pytorch_ms']:.2f}" in row


def test_peers_without_torch_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    monkeypatch.delitem(sys.modules, "peers.torch_models", raising=False)
    out = tmp_path / "peers.json"
    assert _run().main(["--peers", "--peer-cases", "toy", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -r benchmarks/peers/requirements.txt" in err
    assert not out.exists()
