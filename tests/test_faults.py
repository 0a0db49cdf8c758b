"""Faults and bad input at the run level end cleanly (issue 14): one line, an exit status, and
nothing lost or left behind. Checkpoint-file damage itself is in test_checkpoint_faults.py."""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from jaxgan.errors import ConfigError
from jaxgan.training.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = ["--config=toy-wgan-gp", "--hidden=16,16", "--batch_size=16", "--quiet", "--log_every=100",
       "--sample_every=0", "--num_devices=1"]  # fmt: skip


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_progressive_batches_are_checked_against_devices_before_the_first_step(tmp_path, capsys):
    wd = tmp_path / "run"
    args = ["--stage_schedule=4,8", "--batch_per_res=4:8,8:6", "--num_devices=4", f"--workdir={wd}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--batch_per_res" in err and "8x8" in err, err
    assert not wd.exists()  # nothing left behind


@pytest.mark.parametrize("devices", [1, 2, 4, 8])
def test_default_per_resolution_batches_divide_over_1_2_4_8_devices(devices):
    from jaxgan import configs
    from jaxgan.training import schedule

    paper = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}
    for res, one_gpu in paper.items():
        b = schedule.default_batch_size(res, devices)
        # Divides over the devices; no device gets more than the paper's single-GPU batch.
        assert b % devices == 0 and b >= 1 and b // devices <= one_gpu
    phases = schedule.for_config(configs.get("pggan"), devices).phases()
    assert all(p.batch_size % devices == 0 for p in phases)


def test_max_skips_stops_within_the_streak_whatever_the_log_interval(tmp_path, capsys):
    """A learning rate of 1e38 explodes the networks at once: every later update is non-finite."""
    wd = str(tmp_path)
    code = main([*TOY, "--steps=500", "--max_skips=5", "--ckpt_every=2", "--lr_d=1e38",
                 "--lr_g=1e38", f"--workdir={wd}"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 3
    stop = [line for line in out.splitlines() if line.startswith("stopped at step")]
    assert len(stop) == 1, out
    step = int(stop[0].split()[3].rstrip(":"))
    assert step <= 5 + 2, stop[0]
    rows = _rows(wd)
    assert rows[-1]["skip_streak"] >= 5 and rows[-1]["step"] == step
    # Never saved while skipping or exploded: any checkpoint named restores and is finite.
    if "no checkpoint was saved" not in stop[0]:
        import jaxgan
        from jaxgan.training.checkpoint import is_saveable

        run = jaxgan.open_run(wd)
        assert is_saveable(run.state) and str(run.step) in stop[0]


def test_changed_settings_on_resume_are_refused_or_recorded(tmp_path, capsys):
    wd = f"--workdir={tmp_path}"
    assert main([*TOY, "--steps=2", wd]) == 0
    capsys.readouterr()
    assert main([*TOY, "--steps=4", "--n_critic=3", "--lr_d=3e-4", wd]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "n_critic" in err and "lr_d" in err and "--allow_config_change" in err
    assert json.load(open(tmp_path / "config.json"))["loss"]["n_critic"] == 5  # not overwritten
    assert main([*TOY, "--steps=4", "--n_critic=3", wd, "--allow_config_change"]) == 0
    history = [json.loads(line) for line in open(tmp_path / "config_history.jsonl")]
    assert [h["step"] for h in history] == [0, 2]
    assert history[0]["config"]["loss"]["n_critic"] == 5
    assert history[1]["config"]["loss"]["n_critic"] == 3
    assert any("n_critic" in c for c in history[1]["changed"])


def test_training_longer_resumes_without_a_flag_and_is_recorded(tmp_path, capsys):
    wd = f"--workdir={tmp_path}"
    assert main([*TOY, "--steps=2", wd]) == 0
    capsys.readouterr()
    assert main([*TOY, "--steps=4", "--log_every=1", "--ckpt_every=3", wd]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "at step 2" in out and "done: step 4" in out
    assert [r["step"] for r in _rows(tmp_path)][-2:] == [3, 4]
    history = [json.loads(line) for line in open(tmp_path / "config_history.jsonl")]
    assert [h["step"] for h in history] == [0, 2]
    assert "steps: 2 -> 4" in history[1]["changed"]
    assert json.load(open(tmp_path / "config.json"))["schedule"]["steps"] == 4


def test_one_trainer_per_run_directory(tmp_path):
    """A second trainer in a held directory is refused in one line naming the holder (here: this
    process, from inside the first run's step hook); readers never take it."""
    import jaxgan
    from jaxgan.training.cli import parse
    from jaxgan.training.loop import prepare, train

    config, ns = parse([*TOY, "--steps=3", "--ckpt_every=1", f"--workdir={tmp_path}"])
    refused = []

    def second_trainer(run):
        if run.step == 2:
            with pytest.raises(ConfigError) as e:
                prepare(config, ns.workdir)
            refused.append(str(e.value))
            assert jaxgan.open_run(ns.workdir).step >= 0  # a reader is not refused

    assert train(config, ns.workdir, quiet=True, hooks=[second_trainer]).exit_code == 0
    (msg,) = refused
    assert f"in use by PID {os.getpid()}" in msg and "one trainer per run directory" in msg
    assert "\n" not in msg and not os.path.exists(tmp_path / "owner.json")  # given up at the end


def test_a_holder_that_is_gone_does_not_block(tmp_path, capsys):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    wd = tmp_path / "run"
    wd.mkdir()
    (wd / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead),
                                               "since": "earlier"}))  # fmt: skip
    assert main([*TOY, "--steps=2", f"--workdir={wd}"]) == 0
    (wd / "owner.json").write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": "now"}))
    assert main([*TOY, "--steps=3", f"--workdir={wd}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use by PID 1 on elsewhere since now" in err


def test_the_api_takes_a_preset_name_and_refuses_other_types_in_one_line(tmp_path):
    import jaxgan
    from jaxgan import configs

    with pytest.raises(ConfigError, match="--hidden=64: must be comma-separated values"):
        jaxgan.override(configs.get("toy-gan"), hidden=64)
    with pytest.raises(ConfigError, match="a jaxgan Config or a preset name, not dict"):
        jaxgan.train({"steps": 2}, str(tmp_path))
    with pytest.raises(ConfigError, match="'hidden': '64' is not a list"):
        jaxgan.Config.from_json({"model": {"hidden": "64"}})
    with pytest.raises(ConfigError, match="--config='nope'"):
        jaxgan.train("nope", str(tmp_path))


@pytest.mark.parametrize("dataset", ["folder:/nonexistent", "folder:EMPTY"])
def test_a_failed_start_leaves_nothing_behind(dataset, tmp_path, capsys):
    if dataset == "folder:EMPTY":
        (tmp_path / "empty").mkdir()
        dataset = f"folder:{tmp_path / 'empty'}"
    wd = tmp_path / "run"
    assert main([*TOY, "--config=dcgan-mnist5k", f"--dataset={dataset}", f"--workdir={wd}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dataset" in err, err
    assert not wd.exists()


@pytest.mark.parametrize("kind", ["file", "proc", "readonly"])
def test_unwritable_workdir_is_one_line(kind, tmp_path, capsys, request):
    if kind == "file":
        (tmp_path / "f").write_text("x")
        wd = str(tmp_path / "f" / "run")
    elif kind == "proc":
        wd = "/proc/jaxgan-run"
    else:
        wd = str(request.getfixturevalue("read_only_dir") / "run")
    assert main([*TOY, "--steps=1", f"--workdir={wd}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workdir" in err, err


# experiments/run.py as a user starts it, with a SIGINT sent to itself in the middle of start-up
# (once the data is open): no timing involved.
_CTRL_C_AT_START = """
import os, runpy, signal, sys
import jaxgan.training.loop as loop
open_data = loop._open_data
def interrupted(*args, **kw):
    pipe = open_data(*args, **kw)
    os.kill(os.getpid(), signal.SIGINT)
    return pipe
loop._open_data = interrupted
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_during_start_up_exits_130_quietly(tmp_path):
    wd = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AT_START, os.path.join(ROOT, "experiments", "run.py"),
         *TOY, "--steps=100000", f"--workdir={wd}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 1, (
        proc.stderr
    )
    assert not wd.exists()  # the new run directory was removed


def test_ctrl_c_inside_an_import_is_remembered_not_raised(tmp_path, monkeypatch):
    # Raised inside an import, numpy turns it into an ImportError traceback and a half-built
    # extension module aborts at exit; run.py's handler only records it there.
    spec = importlib.util.spec_from_file_location(
        "_jaxgan_run", os.path.join(ROOT, "experiments", "run.py")
    )
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    (tmp_path / "_sigint_mod.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nfor _ in range(1000): pass\nDONE = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    old = signal.signal(signal.SIGINT, run._on_sigint)
    try:
        mod = importlib.import_module("_sigint_mod")
        assert mod.DONE and run._interrupted == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):  # outside an import it still raises
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        signal.signal(signal.SIGINT, old)
        sys.modules.pop("_sigint_mod", None)


def test_end_of_run_says_where_the_outputs_are(tmp_path, capsys):
    assert main([*TOY, "--steps=2", "--sample_every=0", f"--workdir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert f"outputs in {tmp_path}" in out
    for what in ("samples:", "checkpoint:", "metrics.jsonl", "evaluate.py --workdir", "continue:"):
        assert what in out, out
    ckpt = next(line for line in out.splitlines() if "checkpoint:" in line).split()[-1]
    assert os.path.isdir(ckpt)


def test_damaged_latest_checkpoint_falls_back_with_one_warning(tmp_path, capsys):
    wd = str(tmp_path)
    args = [*TOY, "--ckpt_every=2", "--log_every=2", f"--workdir={wd}"]
    assert main([*args, "--steps=4"]) == 0
    os.remove(os.path.join(wd, "checkpoints", "4", "state", "_METADATA"))
    capsys.readouterr()
    assert main([*args, "--steps=6", "--allow_config_change"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "checkpoints/4" in warnings[0], out
    assert "at step 2" in out
    assert os.path.isdir(os.path.join(wd, "checkpoints", "4"))  # left on disk
    assert [r["step"] for r in _rows(wd)] == [2, 4, 6]  # the rows past step 2 were superseded
    # Every checkpoint damaged: one line, non-zero, never called a config mismatch.
    for step in os.listdir(os.path.join(wd, "checkpoints")):
        meta = os.path.join(wd, "checkpoints", step, "meta", "metadata")
        if os.path.exists(meta):
            os.remove(meta)
    capsys.readouterr()
    assert main([*args, "--steps=8", "--allow_config_change"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "restores" in err and "does not match" not in err, err


def test_disk_full_during_a_run_is_one_line_and_keeps_checkpoints(tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                      capture_output=True).returncode:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here")
    try:
        wd = str(disk / "run")
        code = main([*TOY, "--steps=2000", "--ckpt_every=10", "--log_every=10",
                     "--keep_checkpoints=1000", f"--workdir={wd}"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 1, err
        assert len(err.splitlines()) == 1 and "space" in err, err
        from jaxgan.training.checkpoint import Checkpointer

        ck = Checkpointer(os.path.join(wd, "checkpoints"), create=False)
        steps = ck.all_steps()
        ck.close()
        assert steps, "no checkpoint survived"
        import jaxgan

        assert jaxgan.open_run(wd).step == steps[-1]  # the newest one restores
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
