"""Faults and bad input at the run level end cleanly (issue 14): one line, an exit status, and
nothing lost or left behind. Checkpoint-file damage itself is in test_checkpoint_faults.py."""

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
        from jaxgan.training.loop import is_saveable

        run = jaxgan.open_run(wd)
        assert is_saveable(run.state) and str(run.step) in stop[0]
    else:
        saved = os.listdir(os.path.join(wd, "checkpoints"))
        assert not [d for d in saved if d.isdigit()], saved


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


# experiments/run.py as a user starts it, sending itself a signal at an exact point of start-up
# (argv[1]: SIGNAME@WHERE): inside an import, once the data is open, or inside an orbax restore.
_SIGNAL_AT = """
import os, runpy, signal, sys
name, where = sys.argv[1].split("@")
send = lambda: os.kill(os.getpid(), getattr(signal, name))
class Importing:
    def find_spec(self, module, path=None, target=None):
        if module == where:
            send()
sys.meta_path.insert(0, Importing())
if where in ("open_data", "restore"):
    import jaxgan.training.loop as loop
    from jaxgan.training.checkpoint import Checkpointer
    cls, attr = (loop, "_open_data") if where == "open_data" else (Checkpointer, "restore")
    original = getattr(cls, attr)
    def patched(*args, **kw):
        send()
        return original(*args, **kw)
    setattr(cls, attr, patched)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("when", ["SIGINT@tensorboardX", "SIGTERM@open_data", "SIGINT@restore"])
def test_a_signal_during_start_up_stops_cleanly(when, tmp_path):
    wd, resuming = tmp_path / "run", when.endswith("restore")
    if resuming:
        assert main([*TOY, "--steps=2", f"--workdir={wd}"]) == 0
        before = (wd / "metrics.jsonl").read_text()
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT, when, os.path.join(ROOT, "experiments", "run.py"),
         *TOY, "--steps=100000", f"--workdir={wd}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    signum = getattr(signal, when.split("@")[0])
    assert proc.returncode == 128 + signum, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip() == "", proc.stderr
    assert f"stopped by {signum.name} during start-up" in proc.stdout, proc.stdout
    if resuming:  # the run is as it was: its checkpoint and metric rows
        assert os.listdir(wd / "checkpoints") == ["2"]
        assert (wd / "metrics.jsonl").read_text() == before
    else:
        assert not wd.exists()  # the new run directory was removed


def test_a_signal_before_training_starts_is_acted_on(tmp_path, capsys):
    # What experiments/run.py's own handler caught while Python imported jaxgan.
    wd = tmp_path / "run"
    assert main([*TOY, "--steps=100000", f"--workdir={wd}"], caught=[signal.SIGTERM]) == 143
    assert "stopped by SIGTERM during start-up" in capsys.readouterr().out
    assert not wd.exists()


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
    assert "at step 2" in out and "moved aside to" in warnings[0]
    ckpts = os.path.join(wd, "checkpoints")
    assert os.path.isdir(os.path.join(ckpts, "4.damaged"))  # kept, out of the way
    assert [r["step"] for r in _rows(wd)] == [2, 4, 6]  # the rows past step 2 were superseded
    assert sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) == [2, 4, 6]  # healed
    capsys.readouterr()
    assert main([*args, "--steps=6"]) == 0  # and the next rerun has nothing to repeat
    out = capsys.readouterr().out
    assert "warning" not in out and "at step 6" in out, out
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


@pytest.mark.parametrize("text", ["[1, 2, 3]", "", '{"model": [1]}', "{bad", '{"model": {"hidden": "64"}}'])  # fmt: skip
def test_config_files_that_are_not_configs_are_one_line(text, tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(text)
    assert main([f"--config={path}", f"--workdir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--config={path}:" in err, err


@pytest.mark.parametrize("text", ["", "[1]", '{"loss": {"loss": 3}}'])
def test_a_damaged_config_json_in_a_run_is_one_line_for_trainer_and_readers(text, tmp_path, capsys):
    import jaxgan

    wd = tmp_path / "run"
    assert main([*TOY, "--steps=2", f"--workdir={wd}"]) == 0
    (wd / "config.json").write_text(text)
    capsys.readouterr()
    assert main([*TOY, "--steps=4", f"--workdir={wd}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{wd / 'config.json'}" in err, err
    with pytest.raises(ConfigError, match="config.json"):
        jaxgan.open_run(str(wd))
    assert os.listdir(wd / "checkpoints") == ["2"]  # nothing lost


def test_another_seed_on_resume_starts_a_new_data_order(tmp_path, capsys):
    wd = str(tmp_path / "run")
    assert main([*TOY, "--steps=2", f"--workdir={wd}"]) == 0
    assert main([*TOY, "--steps=4", "--seed=3", "--allow_config_change", f"--workdir={wd}"]) == 0
    out = capsys.readouterr().out
    assert "the data order starts anew" in out and "done: step 4" in out, out
