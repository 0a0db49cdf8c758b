"""Study results that survive a new machine: committed result files are written and read back,
count as done (nothing trains), feed the report and figures without any run directory, give the
curve from the metrics log, and drive --budget_minutes. Fake results only: nothing trains here."""

import json
import os
import signal

import numpy as np
import pytest
from conftest import load_experiment

from jaxgan.study import budget, records
from jaxgan.study import runner as study_lib
from jaxgan.study.runner import Cell, Study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONG = (("steps", 100000),)


def _study() -> Study:
    cells = tuple(Cell("ring8-veegan", f"modes-{o}", 2, LONG) for o in ("gan", "wgan-gp"))
    return Study("long", "two objectives, long", cells, 2500, curve_steps=(6000, 100000))


def _result(objective="gan", seed=0, hq=0.5, train_seconds=100.0, **kw) -> dict:
    """A finished run's result as run_one writes it (with a two-point curve and 3 points)."""
    return {"study": "long", "dataset": "ring8-veegan", "objective": objective,
            "preset": f"modes-{objective}", "seed": seed, "steps": 100000, "step": 100000,
            "exit_code": 0, "overrides": {"steps": 100000}, "commit": "abc-dirty",
            "train_seconds": train_seconds, "eval_seconds": 2.0, "num_samples": 2500,
            "modes_captured": 8, "num_modes": 8, "high_quality_fraction": hq, "reverse_kl": 0.01,
            "curve": [{"step": 6000, "modes_captured": 7, "high_quality_fraction": hq / 2,
                       "reverse_kl": 0.1},
                      {"step": 100000, "modes_captured": 8, "high_quality_fraction": hq,
                       "reverse_kl": 0.01}],
            "samples": [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], **kw}  # fmt: skip


def _commit(results_dir, result) -> str:
    path = records.path(str(results_dir), result["dataset"], result["objective"], result["seed"])
    records.write(path, result)
    return path


def test_result_file_is_written_whole_and_read_back(tmp_path):
    result = _result()
    path = _commit(tmp_path, result)
    assert path == str(tmp_path / "runs" / "ring8-veegan" / "gan" / "seed0.json")
    assert records.read(path) == result and os.listdir(os.path.dirname(path)) == ["seed0.json"]
    text = open(path).read()
    assert text.count("\n") == len(result) + 2  # one key a line, braces on their own
    assert records.read(str(tmp_path / "missing.json")) is None
    (tmp_path / "torn.json").write_text(text[:200])
    assert records.read(str(tmp_path / "torn.json")) is None


def test_points_are_a_small_rounded_subsample():
    pts = np.random.default_rng(0).normal(size=(2500, 2))
    kept = records.points(pts)
    assert len(kept) == records.MAX_POINTS and kept[0] == [round(v, 3) for v in pts[0]]
    assert len(json.dumps(kept)) < 20000


def test_curve_is_read_from_the_metrics_rows():
    rows = [{"step": s, "modes/modes_captured": s // 1000, "modes/high_quality_fraction": 0.1,
             "modes/reverse_kl": 1.0} for s in range(500, 7001, 500)]  # fmt: skip
    rows.insert(5, {"step": 3000, "modes/modes_captured": 99})  # logged before a kill ...
    rows.append({"step": 6000, "eval/modes/modes_captured": 42})  # an evaluation row
    rows.append({"step": 6500, "w_estimate": 0.3})  # no modes in it
    curve = records.curve(rows, keep=(2500,))
    assert [p["step"] for p in curve] == [1000, 2000, 2500, 3000, 4000, 5000, 6000, 7000]
    assert curve[3]["modes_captured"] == 3  # ... and again after the resume: the later row wins
    assert curve[6]["modes_captured"] == 42 and curve[6]["high_quality_fraction"] == 0.1
    assert records.curve_at({"curve": curve}, 2500)["modes_captured"] == 2
    assert records.curve_at({"curve": curve}, 2600) is None and records.curve([]) == []


def test_a_committed_result_counts_as_done_without_training(tmp_path, monkeypatch):
    import jaxgan

    def no_training(*a, **kw):
        raise AssertionError("trained a run that has a committed result")

    monkeypatch.setattr(jaxgan, "train", no_training)
    study, root, committed = _study(), str(tmp_path / "root"), str(tmp_path / "committed")
    cell = study.cells[0]
    result = _result()
    _commit(committed, result)
    assert study_lib.run_one(study, cell, 0, root, results_dir=committed) == result
    assert study_lib.done(cell, 0, root, results_dir=committed) == result
    assert study_lib.done(cell, 0, root, overrides={"ckpt_every": 50}, results_dir=committed)
    assert not os.path.exists(root)  # no run directory was made
    # a variant (other run flags) neither counts nor writes committed results
    assert study_lib.done(cell, 0, root, overrides={"steps": 8}, results_dir=committed) is None
    # a cell since redefined (another budget) is not done by the old file
    other = Cell("ring8-veegan", "modes-gan", 2, (("steps", 50000),))
    assert study_lib.done(other, 0, root, results_dir=committed) is None
    assert study_lib.done(cell, 1, root, results_dir=committed) is None


def test_a_run_directory_result_of_a_shorter_budget_is_not_done(tmp_path):
    study, root = _study(), str(tmp_path)
    cell = study.cells[0]
    os.makedirs(cell.workdir(root, 0))
    short = _result(step=5000)
    with open(os.path.join(cell.workdir(root, 0), study_lib.RESULT_FILE), "w") as f:
        json.dump(short, f)
    assert study_lib.done(cell, 0, root) is None  # trains on to 100k
    assert study_lib.done(cell, 0, root, overrides={"steps": 5000}) == short
    assert study_lib.result_for(cell, 0, root) == short  # the report still shows what is there


def test_budget_estimates_from_the_cell_then_the_preset():
    known = [
        _result(train_seconds=200.0),  # this cell: 2 ms per step
        {**_result(train_seconds=50.0), "study": "toys", "dataset": "grid25-veegan"},
    ]
    args = dict(study="long", preset="modes-gan", steps_left=50000)
    assert budget.estimate_seconds(known, dataset="ring8-veegan", **args) == pytest.approx(102.0)
    # another dataset of the same preset: every committed run of the preset (250 s / 200k steps)
    assert budget.estimate_seconds(known, dataset="grid25", **args) == pytest.approx(64.5)
    assert budget.estimate_seconds(known, study="long", dataset="ring8-veegan",
                                   preset="modes-wgan", steps_left=10) is None  # fmt: skip


@pytest.mark.parametrize(("estimate", "remaining", "expected"), [
    (100.0, 120.0, True), (100.0, 90.0, False),  # known: fits or not
    (None, 1800.0, True), (None, 1700.0, False),  # unknown: only while half the budget is left
    (0.0, 0.0, False),  # nothing left
])  # fmt: skip
def test_budget_fits(estimate, remaining, expected):
    assert budget.fits(estimate, remaining, budget=3600.0) is expected


def _place_reference(root):
    """The real-data reference as the report caches it (computing it is not this test's job)."""
    os.makedirs(root, exist_ok=True)
    ref = {"dataset": "ring8-veegan", "num_samples": 2500, "modes_captured": 8, "num_modes": 8,
           "high_quality_fraction": 0.99, "reverse_kl": 0.002}  # fmt: skip
    with open(os.path.join(root, "real_data_ring8-veegan_2500.json"), "w") as f:
        json.dump(ref, f)


def test_report_and_figures_from_committed_results_alone(tmp_path):
    study, root, committed = _study(), str(tmp_path / "root"), str(tmp_path / "committed")
    for seed, hq in ((0, 0.4), (1, 0.6)):
        _commit(committed, _result(seed=seed, hq=hq))
    _commit(committed, _result("wgan-gp", hq=0.9))
    _place_reference(root)  # the root holds nothing else: no run directory
    results, table = study_lib.build_report(study, root, committed)
    gan, gp = results["cells"]
    assert (gan["seeds_done"], gp["seeds_done"]) == (2, 1)
    assert gan["high_quality_fraction"]["mean"] == pytest.approx(0.5)
    assert "samples" not in gan["runs"][0]  # the points stay in the result files
    assert [p["step"] for p in gan["curve"]] == [6000, 100000]
    assert "| ring8-veegan | gan | 2 | 8.0 ± 0.0 / 8 | 50.0 ± 10.0 |" in table
    assert "| dataset | objective | 6k | 100k |" in table
    assert "| ring8-veegan | gan | 7.0 / 25.0 % | 8.0 / 50.0 % |" in table
    from jaxgan.study import figures as study_figures

    paths = study_figures.write_figures(study, root, results_dir=committed)
    assert set(paths) == {"bars", "samples", "curve"}  # the others need run directories


def _cli(tmp_path):
    cli = load_experiment("study")
    cli.RESULTS_ROOT = str(tmp_path / "committed")
    return cli


def test_cli_budget_must_be_positive_minutes(tmp_path, capsys):
    cli = _cli(tmp_path)
    for value in ("-1", "0", "nan"):
        assert cli.main([f"--root={tmp_path / 'r'}", f"--budget_minutes={value}"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"--budget_minutes={value}" in err, err
    assert not (tmp_path / "r").exists()


def test_cli_report_on_a_fresh_clone_uses_the_committed_results(tmp_path, capsys):
    cli = _cli(tmp_path)
    result = {**_result(), "study": "toys", "preset": "modes-gan", "overrides": {}, "steps": 6000,
              "step": 6000}  # fmt: skip
    _commit(os.path.join(cli.RESULTS_ROOT, "toys"), result)
    root = tmp_path / "fresh"  # no run directory, not even the root
    assert cli.main([f"--root={root}", "--report", "--cells=ring8-veegan/gan"]) == 0
    assert "| ring8-veegan | gan | 1 of 5 | 8.0 ± 0.0 / 8 | 50.0 ± 0.0 |" in capsys.readouterr().out
    assert json.load(open(root / "results.json"))["cells"][0]["runs"][0]["commit"] == "abc-dirty"


class _Job:
    """A fake job process: runs until it is sent a signal (or polled 2,000 times)."""

    launched: list = []

    def __init__(self, cmd, **kw):
        self.cmd, self.signals, self.polls, self.returncode = cmd, [], 0, None
        _Job.launched.append(self)

    def send_signal(self, signum):
        self.signals.append(signum)

    def poll(self):
        self.polls += 1
        if self.signals or self.polls > 2000:
            self.returncode = 128 + (self.signals[0] if self.signals else 0)
        return self.returncode


class _Clock:
    """study.py's ``time``: a poll's sleep moves the clock on by its length and takes no time, so
    a budget runs out at a known poll however busy the machine is."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _train(cli, tmp_path, monkeypatch, minutes, committed=()):
    _Job.launched = []
    monkeypatch.setattr(cli.subprocess, "Popen", _Job)
    monkeypatch.setattr(cli, "time", _Clock())
    for r in committed:
        _commit(os.path.join(cli.RESULTS_ROOT, "toys-100k"), r)
    args = cli._parser(list(study_lib.STUDIES)).parse_args(
        [
            f"--root={tmp_path / 'r'}",
            "--cells=grid25-veegan/wgan-gp",
            "--seeds=2",
            "--jobs=2",
            f"--budget_minutes={minutes}",
        ]  # fmt: skip
    )
    args.passed = []
    study = study_lib.get("toys-100k")
    return cli._train(study, cli._selected(study, args), args)


def _toys100k(seed, train_seconds):
    return {**_result(seed=seed, train_seconds=train_seconds), "study": "toys-100k",
            "dataset": "grid25-veegan", "objective": "wgan-gp", "preset": "modes-wgan-gp"}  # fmt: skip


def test_cli_budget_starts_only_runs_that_fit(tmp_path, monkeypatch, capsys):
    cli = _cli(tmp_path)
    # seed 0 committed at 6,000 s per 100k steps: seed 1 does not fit in 60 minutes
    assert _train(cli, tmp_path, monkeypatch, 60, [_toys100k(0, 6000.0)]) == 0
    out = capsys.readouterr().out
    assert _Job.launched == [] and "1 already done, 1 to train" in out, out
    assert "1 of 2 selected runs done (0 now), 1 pending (0 of them checkpointed" in out, out
    assert "min of CPU in the jobs" in out


def test_cli_budget_end_stops_the_running_jobs_as_ctrl_c(tmp_path, monkeypatch, capsys):
    cli = _cli(tmp_path)
    # nothing known: both start (more than half of the budget left), then the budget ends
    assert _train(cli, tmp_path, monkeypatch, 0.002) == 0
    out = capsys.readouterr().out
    assert len(_Job.launched) == 2 and all(j.signals == [signal.SIGINT] for j in _Job.launched)
    assert out.count("start grid25-veegan/wgan-gp/") == 2 and "budget of 0.002 min spent" in out
    assert out.count("stopped at the end of the budget") == 2 and "2 pending" in out, out
    assert f"--results={os.path.join(cli.RESULTS_ROOT, 'toys-100k')}" in _Job.launched[0].cmd


def test_planned_accumulated_studies_are_the_runners():
    """experiments/results/accumulated.json (what the results page plans) is the runner's study."""
    with open(os.path.join(ROOT, "experiments", "results", "accumulated.json")) as f:
        plans = json.load(f)
    for name, plan in plans.items():
        if name == "about":
            continue
        study = study_lib.get(name)
        assert plan["curve_steps"] == list(study.curve_steps)
        assert {c.config(0).schedule.steps for c in study.cells} == {plan["steps"]}
        cells = [{"dataset": c.dataset, "objective": c.objective, "preset": c.preset,
                  "seeds": c.seeds} for c in study.cells]  # fmt: skip
        assert plan["cells"] == cells
