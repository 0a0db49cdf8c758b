"""The mode-collapse study runner: runs resume and are not redone, results match an independent
recomputation of the PacGAN/VEEGAN metrics, the table aggregates over seeds, figures are written."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxgan.data.toys import get_toy
from jaxgan.study import runner as study_lib
from jaxgan.study.runner import Cell, Study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = (("hidden", (16, 16)), ("batch_size", 32), ("steps", 12), ("log_every", 4),
        ("sample_every", 0), ("ckpt_every", 6))  # fmt: skip


def _tiny_study() -> Study:
    cells = tuple(Cell("ring8-veegan", f"modes-{o}", 2, TINY) for o in ("wgan", "wgan-gp"))
    return Study("tiny", "two objectives on the ring", cells, 500)


def _reference_metrics(points: np.ndarray, dataset: str) -> dict:
    """The protocol written out again: HQ = within 3 std of the nearest mode."""
    toy = get_toy(dataset)
    d = np.linalg.norm(points[:, None, :].astype(np.float64) - toy.centers[None], axis=-1)
    nearest, dist = d.argmin(1), d.min(1)
    hq = dist <= 3 * toy.std
    counts = np.array([np.sum(nearest[hq] == k) for k in range(len(toy.centers))], np.float64)
    if counts.sum() == 0:  # the protocol's convention: no high-quality sample -> log K
        return {"modes": 0, "hq": 0.0, "kl": float(np.log(len(counts)))}
    p = counts / counts.sum()
    kl = float(np.sum(p[p > 0] * np.log(p[p > 0] * len(p))))
    return {"modes": int((counts > 0).sum()), "hq": float(hq.mean()), "kl": kl}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("study"))
    study = _tiny_study()
    results = [study_lib.run_one(study, c, s, root) for c, s, _ in study.runs(root)]
    return study, root, results


def test_results_match_an_independent_recomputation(finished):
    study, root, results = finished
    assert len(results) == 4 and all(r is not None for r in results)
    for (cell, seed, workdir), r in zip(study.runs(root), results, strict=True):
        assert (r["objective"], r["seed"], r["step"]) == (cell.objective, seed, 12)
        pts = np.load(os.path.join(workdir, study_lib.SAMPLES_FILE))
        assert pts.shape == (500, 2)
        ref = _reference_metrics(pts, "ring8-veegan")
        assert r["modes_captured"] == ref["modes"]
        assert r["high_quality_fraction"] == pytest.approx(ref["hq"])
        assert r["reverse_kl"] == pytest.approx(ref["kl"], abs=1e-9)


def test_seeds_differ_and_finished_runs_are_not_redone(finished):
    study, root, results = finished
    (c0, s0, w0), (_, s1, w1) = study.runs(root)[:2]
    assert not np.array_equal(np.load(os.path.join(w0, study_lib.SAMPLES_FILE)),
                              np.load(os.path.join(w1, study_lib.SAMPLES_FILE)))  # fmt: skip
    before = os.path.getmtime(os.path.join(w0, study_lib.RESULT_FILE))
    ckpts = sorted(os.listdir(os.path.join(w0, "checkpoints")))
    assert study_lib.run_one(study, c0, s0, root) == results[0]
    assert os.path.getmtime(os.path.join(w0, study_lib.RESULT_FILE)) == before
    assert sorted(os.listdir(os.path.join(w0, "checkpoints"))) == ckpts


def test_table_is_the_mean_and_std_over_seeds(finished):
    study, root, results = finished
    paths = study_lib.write_report(study, root)
    rows = json.load(open(paths["results"]))["cells"]
    for row in rows:
        mine = [r for r in results if r["objective"] == row["objective"]]
        hq = np.array([r["high_quality_fraction"] for r in mine])
        assert row["seeds_done"] == 2
        assert row["high_quality_fraction"]["mean"] == pytest.approx(hq.mean())
        assert row["high_quality_fraction"]["std"] == pytest.approx(hq.std())
    table = open(paths["table"]).read()
    gp = rows[1]
    assert (f"| ring8-veegan | wgan-gp | 2 | {gp['modes_captured']['mean']:.1f} ± "
            f"{gp['modes_captured']['std']:.1f} / 8 |") in table  # fmt: skip
    ref = json.load(open(paths["results"]))["real_data"]
    assert [r["dataset"] for r in ref] == ["ring8-veegan"] and ref[0]["num_samples"] == 500
    assert (
        f"| ring8-veegan | real data (500 samples) | – | {ref[0]['modes_captured']} / 8 |" in table
    )


@pytest.mark.parametrize("dataset", ["ring8-veegan", "grid25"])
def test_real_reference_is_a_perfect_generators_score(dataset):
    """Real points score the analytic share of a 2-D Gaussian within 3 std, 1 - exp(-4.5)."""
    ref = study_lib.real_reference(dataset, 20000, seed=1)
    assert ref["high_quality_fraction"] == pytest.approx(1 - np.exp(-4.5), abs=0.003)
    assert ref["modes_captured"] == ref["num_modes"] and 0 <= ref["reverse_kl"] < 0.01


def test_a_missing_seed_is_said_in_the_table(tmp_path):
    study = Study("one", "d", (Cell("ring8-veegan", "modes-gan", 3, TINY),), 100)
    run = study.runs(str(tmp_path))[0][2]
    os.makedirs(run)
    json.dump({"modes_captured": 3, "num_modes": 8, "high_quality_fraction": 0.5,
               "reverse_kl": 0.2, "train_seconds": 1.0},
              open(os.path.join(run, study_lib.RESULT_FILE), "w"))  # fmt: skip
    table = study_lib.markdown_table(study, study_lib.collect(study, str(tmp_path)))
    assert "| ring8-veegan | gan | 1 of 3 | 3.0 ± 0.0 / 8 | 50.0 ± 0.0 |" in table


def test_figures_are_written(finished):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from jaxgan.study import figures as study_figures

    study, root, _ = finished
    paths = study_figures.write_figures(study, root)
    assert set(paths) == {"bars", "samples", "critic", "weights", "w_estimate"}
    for p in paths.values():
        w, h = Image.open(p).size
        assert w > 300 and h > 200
    clip = study_figures.critic_weights(study.runs(root)[0][2])
    assert np.abs(clip).max() <= 0.01  # weight clipping at c = 0.01 holds every kernel weight


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    for args, flag in ((["--study=nope"], "--study"), (["--steps=0"], "--steps"),
                       (["--jobs=0"], "--jobs"), (["--hidden=0"], "--hidden")):  # fmt: skip
        p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "study.py"), *args,
                            f"--root={tmp_path}"], capture_output=True, text=True)  # fmt: skip
        assert p.returncode == 2, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and flag in p.stderr, p.stderr
    assert not os.listdir(tmp_path)


def test_cli_trains_in_parallel_jobs_then_skips_finished_runs(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "study.py"), "--study=toys",
           f"--root={tmp_path}", "--cells=ring8-veegan/wgan-gp", "--seeds=2", "--jobs=2",
           "--hidden=16,16", "--batch_size=32", "--steps=8", "--sample_every=0", "--ckpt_every=4",
           "--ema=0.9", "--no-download"]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "2 to train" in first.stdout and first.stdout.count("/8 modes") == 2, first.stdout
    rows = json.load(open(tmp_path / "results.json"))["cells"]
    gp = next(r for r in rows if r["dataset"] == "ring8-veegan" and r["objective"] == "wgan-gp")
    assert gp["seeds_done"] == 2 and [r["step"] for r in gp["runs"]] == [8, 8]
    config = json.load(open(tmp_path / "ring8-veegan" / "wgan-gp" / "seed1" / "config.json"))
    assert config["model"]["hidden"] == [16, 16] and config["output"]["seed"] == 1
    assert config["optim"]["ema"] == 0.9 and config["data"]["download"] is False
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and "0 to train" in again.stdout, again.stderr
