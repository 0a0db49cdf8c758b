"""The mode-collapse study runner: runs resume and are not redone, results match an independent
recomputation of the PacGAN/VEEGAN metrics, the table aggregates over seeds, figures are written."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import load_experiment

from jaxgan.data.toys import get_toy
from jaxgan.study import records
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


def test_a_finished_run_is_committed_as_a_small_result_file(finished, tmp_path):
    """The run's result keeps the budget, overrides, commit, curve and points; a run finished
    before it was committed is committed on the next call, without training."""
    study, root, results = finished
    cell, seed, workdir = study.runs(root)[1]
    r = results[1]
    assert (r["steps"], r["step"]) == (12, 12)
    assert r["overrides"] == json.loads(json.dumps(dict(TINY)))
    assert r["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", r["commit"])
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        logged = [row for line in f if (row := json.loads(line)).get("step") == 12][-1]
    assert [p["step"] for p in r["curve"]] == [12]
    assert r["curve"][0]["modes_captured"] == logged["modes/modes_captured"]
    pts = np.load(os.path.join(workdir, study_lib.SAMPLES_FILE))
    assert np.allclose(r["samples"], pts, atol=5e-4) and len(r["samples"]) == 500
    ckpts = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    assert study_lib.run_one(study, cell, seed, root, results_dir=str(tmp_path)) == r
    committed = records.path(str(tmp_path), cell.dataset, cell.objective, seed)
    assert records.read(committed) == r and os.listdir(tmp_path) == ["runs"]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ckpts


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


# experiments/study.py in this process: every bad input is one line on stderr and exit status 2,
# checked before anything is created or changed under --root.
def _study_cli():
    return load_experiment("study")


@pytest.fixture
def cli(tmp_path_factory):
    module = _study_cli()  # a fresh module: no signal recorded yet
    module.RESULTS_ROOT = str(tmp_path_factory.mktemp("committed"))  # not the repo's results
    return module


def _main(cli, *args) -> int:
    try:
        return cli.main([str(a) for a in args])
    except SystemExit as e:  # argparse before the fix
        return e.code


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("study.py: "), err
    return err


def _tree(path) -> dict:
    """Every file under ``path`` with its bytes."""
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), path)] = fh.read()
    return out


def _finished(root, objective="gan", seed=0, result=None):
    """A finished run of the toys study on the ring (its result and samples), and the real-data
    reference cached as write_report keeps it (computing it is not these tests' business)."""
    run = os.path.join(root, "ring8-veegan", objective, f"seed{seed}")
    os.makedirs(run)
    result = result or {"study": "toys", "dataset": "ring8-veegan", "objective": objective,
                        "seed": seed, "step": 8, "modes_captured": 3, "num_modes": 8,
                        "high_quality_fraction": 0.5, "reverse_kl": 0.2, "train_seconds": 1.0}  # fmt: skip
    with open(os.path.join(run, study_lib.RESULT_FILE), "w") as f:
        f.write(result if isinstance(result, str) else json.dumps(result))
    pts = np.random.default_rng(seed).normal(size=(50, 2)).astype(np.float32)
    np.save(os.path.join(run, study_lib.SAMPLES_FILE), pts)
    ref = {"dataset": "ring8-veegan", "num_samples": 2500, "modes_captured": 8, "num_modes": 8,
           "high_quality_fraction": 0.99, "reverse_kl": 0.001}  # fmt: skip
    with open(os.path.join(root, "real_data_ring8-veegan_2500.json"), "w") as f:
        json.dump(ref, f)
    return run


def test_cli_root_that_is_a_file_is_one_line(cli, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    for args in ([f"--root={afile}"], [f"--root={afile}", "--report"],
                 [f"--root={afile}/sub", "--cells=ring8-veegan/gan", "--seeds=1"]):  # fmt: skip
        assert _main(cli, *args) == 2
        err = _error(capsys)
        assert "--root" in err and "directory" in err, err
    assert afile.read_text() == "mine\n" and os.listdir(tmp_path) == ["afile"]


def test_cli_cells_that_match_nothing_is_one_line_listing_the_cells(cli, tmp_path, capsys):
    root = tmp_path / "r"
    for cells in ("nomatch", "ring8-veegan/gan,nomatch"):
        assert _main(cli, f"--root={root}", f"--cells={cells}", "--steps=2") == 2
        err = _error(capsys)
        assert "--cells" in err and "'nomatch'" in err and "ring8-veegan" in err, err
        assert "grid25-veegan" in err and "wgan-gp" in err and len(err) < 300, err
    assert not root.exists()
    _finished(root)
    before = _tree(root)
    assert _main(cli, f"--root={root}", "--cells=nomatch", "--report") == 2
    assert "--cells" in _error(capsys) and _tree(root) == before


def test_cli_bad_flags_and_values_are_one_line(cli, tmp_path, capsys, monkeypatch):
    root = tmp_path / "r"
    cases = (("--jobs=abc", "--jobs"), ("--seeds=1.5", "--seeds"), ("--nope=1", "--nope"),
             ("--seed=3", "--seed"), ("--dataset=ring8", "--dataset"), ("--root=", "--root"),
             ("--run=x/y/0", "--run"))  # fmt: skip
    monkeypatch.chdir(tmp_path)  # an empty --root must not fall back to studies/toys here
    for arg, flag in cases:
        assert _main(cli, f"--root={root}", arg, "--report") == 2, arg
        assert flag in _error(capsys)
    assert os.listdir(tmp_path) == []


def test_cli_report_needs_finished_runs(cli, tmp_path, capsys):
    root = tmp_path / "r"
    assert _main(cli, f"--root={root}", "--report") == 2
    assert "--root" in _error(capsys) and not root.exists()
    root.mkdir()
    (root / "ring8-veegan" / "gan" / "seed0").mkdir(parents=True)  # started, not finished
    assert _main(cli, f"--root={root}", "--report") == 2
    err = _error(capsys)
    assert "--report" in err and "without --report" in err, err
    assert _tree(root) == {}


def test_cli_root_of_another_study_is_refused(cli, tmp_path, capsys):
    _finished(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"study": "stacked-mnist", "cells": []}))
    before = _tree(tmp_path)
    assert _main(cli, f"--root={tmp_path}", "--report") == 2
    assert "stacked-mnist" in _error(capsys) and _tree(tmp_path) == before


def test_cli_root_that_cannot_be_written_is_one_line(cli, read_only_dir, capsys):
    for root in (read_only_dir, read_only_dir / "sub"):
        args = [f"--root={root}", "--cells=ring8-veegan/gan", "--seeds=1", "--steps=2"]
        assert _main(cli, *args) == 2
        err = _error(capsys)
        assert "--root" in err and "writ" in err, err
    assert os.listdir(read_only_dir) == []


def _read_only(path):
    """``path`` (already filled) made read-only, as the read_only_dir fixture does; the undo."""
    os.chmod(path, 0o555)
    if not os.access(path, os.W_OK):
        return lambda: os.chmod(path, 0o755)
    mount = lambda *a: subprocess.run(["mount", *a], capture_output=True).returncode == 0  # noqa: E731
    if mount("--bind", str(path), str(path)):
        if mount("-o", "remount,ro,bind", str(path)):
            return lambda: (subprocess.run(["umount", str(path)]), os.chmod(path, 0o755))
        subprocess.run(["umount", str(path)], capture_output=True)
    os.chmod(path, 0o755)
    pytest.skip("cannot make a read-only directory here")


def test_cli_report_on_a_read_only_root_prints_the_table_and_one_line(cli, tmp_path, capsys):
    _finished(tmp_path)
    before = _tree(tmp_path)
    undo = _read_only(tmp_path)
    try:
        assert _main(cli, f"--root={tmp_path}", "--report") == 1
    finally:
        undo()
    out, err = capsys.readouterr()
    assert "| ring8-veegan | gan | 1 of 5 | 3.0 ± 0.0 / 8 |" in out
    assert len(err.splitlines()) == 1 and str(tmp_path) in err and "--root" in err, err
    assert _tree(tmp_path) == before


def test_cli_report_that_cannot_be_finished_leaves_the_last_one_whole(cli, tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    _finished(tmp_path)
    assert _main(cli, f"--root={tmp_path}", "--report") == 0
    capsys.readouterr()
    before = _tree(tmp_path)
    dump = json.dump

    def disk_full(obj, f, **kw):
        if isinstance(obj, dict) and "cells" in obj:
            f.write('{"study": "to')
            raise OSError(errno.ENOSPC, "No space left on device", f.name)
        return dump(obj, f, **kw)

    monkeypatch.setattr(json, "dump", disk_full)
    _finished(tmp_path, seed=1)
    before |= {k: v for k, v in _tree(tmp_path).items() if "seed1" in k}
    assert _main(cli, f"--root={tmp_path}", "--report") == 1
    err = _error(capsys)
    assert "No space left" in err, err
    assert _tree(tmp_path) == before  # no half-written results.json, nothing left over


def test_cli_signal_before_the_report_changes_nothing(cli, tmp_path, capsys):
    _finished(tmp_path)
    before = _tree(tmp_path)
    cli._interrupted.append(signal.SIGINT)  # Ctrl-C during start-up
    assert _main(cli, f"--root={tmp_path}", "--report") == 130
    assert _tree(tmp_path) == before and capsys.readouterr().err == ""


def test_cli_signal_during_the_figures_stops_at_the_next_one(cli, tmp_path, capsys, monkeypatch):
    from jaxgan.study import figures as study_figures

    _finished(tmp_path)

    def bars(study, root, path):
        cli._interrupted.append(signal.SIGTERM)
        return None

    monkeypatch.setattr(study_figures, "bars_figure", bars)
    assert _main(cli, f"--root={tmp_path}", "--report") == 143
    assert json.load(open(tmp_path / "results.json"))["cells"][0]["seeds_done"] == 1
    assert not [f for f in os.listdir(tmp_path) if f.endswith((".png", ".tmp"))]
    assert capsys.readouterr().err == ""


def test_cli_signal_is_passed_on_to_the_running_jobs(cli, tmp_path, monkeypatch):
    """A signal to study.py alone (kill PID, a scheduler) reaches its jobs; the exit says which."""

    class Job:
        launched: list = []

        def __init__(self, cmd, **kw):
            self.signals, self.polls, self.returncode = [], 0, None
            Job.launched.append(self)
            cli._interrupted.append(signal.SIGTERM)  # comes while the first job trains

        def send_signal(self, signum):
            self.signals.append(signum)

        def poll(self):
            self.polls += 1
            if self.signals or self.polls > 20:  # stops when told; ends anyway before the fix
                self.returncode = 128 + (self.signals[0] if self.signals else 0)
            return self.returncode

    monkeypatch.setattr(cli.subprocess, "Popen", Job)
    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    args = cli._parser(list(study_lib.STUDIES)).parse_args(
        [f"--root={tmp_path}", "--cells=ring8-veegan/gan", "--seeds=2", "--jobs=2"]
    )
    args.passed = []
    runs = cli._selected(study_lib.get("toys"), args)
    assert cli._train(study_lib.get("toys"), runs, args) == 143
    assert len(Job.launched) == 1 and Job.launched[0].signals == [signal.SIGTERM]


def test_cli_job_errors_are_one_line(cli, tmp_path, capsys, monkeypatch):
    from jaxgan.errors import ConfigError

    def no_data(*a, **kw):
        raise ConfigError("--data_dir=/nowhere: no MNIST there; drop --no-download")

    monkeypatch.setattr(study_lib, "run_one", no_data)
    assert _main(cli, f"--root={tmp_path}", "--run=ring8-veegan/gan/0") == 2
    err = _error(capsys)
    assert "ring8-veegan/gan/0" in err and "--data_dir" in err, err


def test_a_run_stopped_at_start_up_returns_none_and_leaves_nothing(tmp_path):
    study = _tiny_study()
    cell = study.cells[0]
    assert study_lib.run_one(study, cell, 0, str(tmp_path), caught=[signal.SIGINT]) is None
    assert not os.path.exists(cell.workdir(str(tmp_path), 0))


def test_cli_damaged_run_files_are_left_out_in_one_warning(cli, tmp_path, capsys):
    _finished(tmp_path)
    bad = _finished(tmp_path, seed=1, result='{"modes_captured": 3, "num_')  # a torn write
    torn = _finished(tmp_path, objective="nsgan")
    with open(os.path.join(torn, study_lib.SAMPLES_FILE), "r+b") as f:
        f.truncate(40)
    assert _main(cli, f"--root={tmp_path}", "--report") == 0
    out, err = capsys.readouterr()
    assert "| ring8-veegan | gan | 1 of 5 |" in out and "| ring8-veegan | nsgan | 1 of 5 |" in out
    assert len(err.splitlines()) == 1 and bad in err, err
    assert os.path.exists(tmp_path / "samples.png")


def test_figures_read_a_metrics_log_a_kill_cut_short_without_warnings(tmp_path):
    from jaxgan.study import figures as study_figures

    run = _finished(tmp_path, objective="wgan")
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        f.write(
            '{"step": 4, "w_estimate": 0.5}\n{"step": 8, "w_estimate": "nan"}\n{"step": 12, "w_'
        )
    study = study_lib.get("toys")
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", UserWarning
        )  # no legend warning for the grid's empty panel either
        path = study_figures.w_estimate_figure(study, str(tmp_path), str(tmp_path / "w.png"))
    assert path and os.path.getsize(path) > 0


def test_cli_report_without_matplotlib_is_the_table_and_one_warning(cli, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    from jaxgan.study import figures as study_figures

    def no_matplotlib():
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(study_figures, "_plt", no_matplotlib)
    _finished(tmp_path)
    assert _main(cli, f"--root={tmp_path}", "--report") == 0
    out, err = capsys.readouterr()
    assert "| ring8-veegan | gan | 1 of 5 |" in out and (tmp_path / "table.md").exists()
    assert len(err.splitlines()) == 1 and "matplotlib" in err and "jaxgan[study]" in err, err
